package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/kasync/kasync/internal/config"
	"github.com/kasync/kasync/internal/kafkatest"
	"github.com/kasync/kasync/internal/node"
	kruntime "github.com/kasync/kasync/runtime"
)

// chromium is the path of a Chromium (or Chrome) binary, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "/usr/bin/chromium", "chromium-browser", "google-chrome-stable", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Skip("no chromium binary found (chromium, chromium-browser or google-chrome in PATH, or /usr/bin/chromium): " +
		"the dashboard's browser test needs one; .ci/run installs Debian's chromium")
	return ""
}

// browser starts a headless Chromium for t, closed (process killed and waited for)
// when the test ends, and collects the page's console errors, uncaught exceptions and
// browser log errors (failed loads, blocked by the content security policy) from now on.
func browser(t *testing.T) (ctx context.Context, consoleErrors func() []string) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		closeCtx, cancelClose := context.WithTimeout(ctx, 10*time.Second)
		defer cancelClose()
		if err := chromedp.Cancel(closeCtx); err != nil {
			t.Logf("closing the browser: %v", err)
		}
		cancel()
		cancelAlloc() // kills the browser if it is still there, and waits for it
	})
	var (
		mu   sync.Mutex
		errs []string
	)
	add := func(s string) {
		mu.Lock()
		errs = append(errs, s)
		mu.Unlock()
	}
	// Listen starts the browser (on ctx, which must outlive every action) and opens its tab.
	require.NoError(t, chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					if a.Value != nil {
						args = append(args, string(a.Value))
					} else {
						args = append(args, a.Description)
					}
				}
				add(fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			desc := ""
			if d.Exception != nil {
				desc = d.Exception.Description
			}
			add(fmt.Sprintf("uncaught exception at %s:%d:%d: %s %s", d.URL, d.LineNumber, d.ColumnNumber, d.Text, desc))
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError {
				add(fmt.Sprintf("browser log (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	}), "start Chromium")
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), errs...)
	}
}

// inBrowser runs one browser action within a minute.
func inBrowser[T any](ctx context.Context, t *testing.T, what string, a chromedp.Action[T]) T {
	t.Helper()
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(actx, a)
	require.NoError(t, err, what)
	return v
}

// waitFor polls the JavaScript predicate expr in the page until it is true, and on a
// timeout fails with what the page shows.
func waitFor(ctx context.Context, t *testing.T, what, expr string, timeout time.Duration) {
	t.Helper()
	actx, cancel := context.WithTimeout(ctx, timeout+10*time.Second)
	defer cancel()
	_, err := chromedp.Run(actx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		require.NoError(t, err, "%s; the page shows:\n%s", what, page)
	}
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestDashboardInChromium drives the dashboard of a running node in headless Chromium.
// The page loads with no console error, no uncaught exception and no failed load;
// before any event it shows the function and no dead letters; then events arrive, a
// tenth of which fail fatally with markup in their error, and the page — updated by
// its own script, never reloaded — shows those dead letters: the function, the reason
// and the error as text, in the latest entries and in the counts by function and
// reason, and the function's fatal count.
func TestDashboardInChromium(t *testing.T) {
	t.Parallel()
	const n, fatal = 100, 10
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.NewTopic(t, brokers, 2)
	const fn = "charge-card"
	cfg := testConfig(t, brokers, topic, func(c *config.Config) {
		c.Functions[0].Name = fn
		c.Tailers[0].Function = fn
	})
	reg := kruntime.NewRegistry()
	reg.MustRegister(fn, failTens) // "declined <b>e-…0</b>", fatal
	nd := start(t, node.Options{Config: cfg, Registry: reg})

	ctx, consoleErrors := browser(t)
	url := "http://" + nd.HTTPAddr() + "/"
	inBrowser(ctx, t, "load the dashboard", chromedp.Steps(
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS("#functions")),
	))
	require.Equal(t, fn, inBrowser(ctx, t, "the function's row", chromedp.Text(chromedp.CSS("#functions tbody tr td"))))
	require.Equal(t, "none", inBrowser(ctx, t, "no dead letter yet", chromedp.Text(chromedp.CSS("#dead-letters tbody tr.empty td"))),
		"the server-rendered page shows no dead letters before the events")
	// The script has run and fetched status.json; a mark on window shows later that the
	// page was never reloaded.
	waitFor(ctx, t, "the script refreshes the page", `Number(document.body.dataset.refreshes) >= 1`, 30*time.Second)
	require.Contains(t, inBrowser(ctx, t, "live indicator", chromedp.Text(chromedp.CSS("#live"))), "live")
	inBrowser(ctx, t, "mark the page", chromedp.Evaluate[chromedp.Void](`window.kasyncTestMark = 'still the same page'`))
	// Every p50 the function's row shows, from here on: the first refresh after
	// attempts ended shows the percentile of those attempts.
	inBrowser(ctx, t, "watch the p50", chromedp.Evaluate[chromedp.Void](`window.kasyncP50 = [];
		new MutationObserver(() => {
			const tr = document.querySelector('#functions tbody tr');
			if (tr && tr.cells.length > 3 && tr.cells[3].textContent !== '—') window.kasyncP50.push(tr.cells[3].textContent);
		}).observe(document.getElementById('functions'), {subtree: true, childList: true, characterData: true})`))

	produce(t, brokers, topic, n)

	// Every latest dead letter row of fn: reason fatal, the error as text (its <b> is
	// not an element).
	latest := fmt.Sprintf(`(() => {
		const rows = Array.from(document.querySelectorAll('#dead-letters tbody tr:not(.empty)'));
		const ok = rows.filter(tr => tr.cells[1].textContent === %s && tr.cells[2].textContent === 'fatal' &&
			/^declined <b>e-\d*0<\/b>$/.test(tr.cells[4].textContent) && tr.cells[4].children.length === 0);
		return ok.length === %d && rows.length === %d;
	})()`, jsString(fn), fatal, fatal)
	waitFor(ctx, t, "the dead letters appear", latest, time.Minute)
	counts := fmt.Sprintf(`(() => {
		const rows = Array.from(document.querySelectorAll('#dead-letter-counts tbody tr'));
		return rows.length === 1 && rows[0].cells[0].textContent === %s && rows[0].cells[1].textContent === 'fatal' &&
			rows[0].cells[2].textContent === '%d';
	})()`, jsString(fn), fatal)
	waitFor(ctx, t, "the dead-letter counts", counts, 30*time.Second)
	fatalCell := `document.querySelector('#functions tbody tr').cells[10].textContent === '` + fmt.Sprint(fatal) + `'`
	waitFor(ctx, t, "the function's fatal count", fatalCell, 30*time.Second)
	// The rungs, as the script renders them: nothing waits on them after this run (no
	// retriable failure), so no oldest due and no lateness, shown as "—", not 0.
	waitFor(ctx, t, "the rungs' oldest due and lateness", `(() => {
		const rows = Array.from(document.querySelectorAll('#rungs tbody tr'));
		return rows.length === 3 && rows.every(tr => tr.cells.length === 7 && tr.cells[2].textContent === '0' &&
			tr.cells[3].textContent === '—' && tr.cells[4].textContent === '—');
	})()`, 30*time.Second)
	waitFor(ctx, t, "a p50 of the attempts between two refreshes", `window.kasyncP50.length > 0 && window.kasyncP50.every(s => /^[≤>] [0-9.]+(µs|ms|s)$/.test(s))`, 30*time.Second)

	require.Equal(t, "still the same page", inBrowser(ctx, t, "read the mark", chromedp.Evaluate[string](`window.kasyncTestMark`)),
		"the page updated itself; it was not reloaded")
	require.Empty(t, consoleErrors(), "no console errors, exceptions or failed loads")
}
