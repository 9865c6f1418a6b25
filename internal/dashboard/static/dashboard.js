// kasync dashboard: fetches status.json every few seconds and rebuilds the page's
// tables from it. Everything from the snapshot goes in as text (textContent), never
// as HTML. The formatting functions mirror internal/dashboard/format.go.
(function () {
  'use strict';

  var body = document.body;
  var interval = Number(body.dataset.refreshMs) || 2000;
  var previous = null; // the last snapshot, for rates
  var refreshes = 0;

  // --- formatting (as format.go) ---

  function seconds(s) {
    if (s < 10) return s.toFixed(2);
    if (s < 100) return s.toFixed(1);
    return s.toFixed(0);
  }

  // duration is s seconds with a unit that suits attempt latencies: 400µs, 1.6ms, 2.1s.
  function duration(s) {
    if (s < 0.001) return (s * 1e6).toFixed(0) + 'µs';
    if (s < 1) return +(s * 1000).toPrecision(3) + 'ms';
    return +s.toPrecision(3) + 's';
  }

  function when(iso) {
    if (!iso) return '—';
    var d = new Date(iso);
    if (isNaN(d.getTime()) || d.getUTCFullYear() <= 1) return '—';
    return d.toISOString().slice(0, 19).replace('T', ' ') + 'Z';
  }

  function limit(f) {
    if (!f.scheduled) return '— / ' + f.concurrency;
    var s = f.limit + ' / ' + f.concurrency;
    if (f.held_until) s += ' (held until ' + when(f.held_until) + ')';
    return s;
  }

  function counted(f, n) {
    return f.scheduled ? String(n) : '—';
  }

  function guard(g) {
    if (!g) return 'none';
    var s = 'off';
    if (g.active) {
      s = 'ON';
      if (g.since) s += ' since ' + when(g.since);
    }
    s += ', ' + g.failures + '/' + g.outcomes + ' failed';
    if (g.trips > 0) s += ', ' + g.trips + ' trips';
    return s;
  }

  function depth(d) {
    return d === null || d === undefined ? 'unknown' : String(d);
  }

  // oldestDue and lateness: '—' when nothing waits, 'unknown' when it was not read.
  function nothingWaits(r) {
    return r.depth === 0 ? '—' : 'unknown';
  }

  function oldestDue(r) {
    return r.oldest_due ? when(r.oldest_due) : nothingWaits(r);
  }

  function lateness(r) {
    return typeof r.lateness_seconds === 'number' ? seconds(r.lateness_seconds) : nothingWaits(r);
  }

  function functionName(s) {
    return s ? s : '(none)';
  }

  // rate is a function's attempts per second between the previous snapshot and st.
  function rate(f, st) {
    if (!previous || !f.scheduled) return '—';
    var before = (previous.functions || []).find(function (p) { return p.name === f.name; });
    var dt = (new Date(st.taken) - new Date(previous.taken)) / 1000;
    if (!before || !before.scheduled || !(dt > 0)) return '—';
    var done = function (x) { return x.succeeded + x.retriable + x.fatal; };
    return (Math.max(0, done(f) - done(before)) / dt).toFixed(1);
  }

  // quantile is the duration (as text) within which a share q of f's attempts ended
  // between the previous snapshot and this one: the upper bound of the bucket that
  // holds it, from the difference of the two histograms; '—' without attempts.
  function quantile(f, q) {
    if (!previous || !f.durations) return '—';
    var before = (previous.functions || []).find(function (p) { return p.name === f.name; });
    if (!before || !before.durations) return '—';
    var counts = f.durations.counts.map(function (c, i) { return Math.max(0, c - (before.durations.counts[i] || 0)); });
    var total = counts.reduce(function (a, b) { return a + b; }, 0);
    if (total === 0) return '—';
    var rank = Math.ceil(q * total), cum = 0, bounds = f.durations.bounds_seconds;
    for (var i = 0; i < counts.length; i++) {
      cum += counts[i];
      if (cum >= rank) return i < bounds.length ? '≤ ' + duration(bounds[i]) : '> ' + duration(bounds[bounds.length - 1]);
    }
    return '—';
  }

  // --- DOM building ---

  // cell is a <td> holding text; opts: {cls, span (rowspan), cols (colspan)}.
  function cell(text, opts) {
    var td = document.createElement('td');
    td.textContent = text;
    if (opts) {
      if (opts.cls) td.className = opts.cls;
      if (opts.span > 1) td.rowSpan = opts.span;
      if (opts.cols > 1) td.colSpan = opts.cols;
    }
    return td;
  }

  function row(cells, cls) {
    var tr = document.createElement('tr');
    if (cls) tr.className = cls;
    cells.forEach(function (c) { tr.appendChild(c); });
    return tr;
  }

  // fill replaces the rows of table id, or shows empty in one row across cols.
  function fill(id, rows, cols, empty) {
    var tbody = document.querySelector('#' + id + ' tbody');
    if (!tbody) return;
    if (rows.length === 0) rows = [row([cell(empty, { cols: cols })], 'empty')];
    tbody.replaceChildren.apply(tbody, rows);
  }

  function text(id, s, cls) {
    var el = document.getElementById(id);
    if (!el) return;
    el.textContent = s;
    if (cls !== undefined) el.className = cls;
  }

  // --- the sections ---

  function renderHeader(st) {
    text('roles', 'roles: ' + (st.roles || []).join(', '));
    var ready = !st.not_ready || st.not_ready.length === 0;
    text('ready', ready ? 'ready' : 'not ready', ready ? 'good' : 'bad');
    text('taken', 'snapshot ' + when(st.taken));
    var items = (st.not_ready || []).map(function (p) { return 'not ready: ' + p; }).concat(st.problems || []);
    var section = document.getElementById('problems');
    if (!section) return;
    section.hidden = items.length === 0;
    var ul = section.querySelector('ul');
    ul.replaceChildren.apply(ul, items.map(function (p) {
      var li = document.createElement('li');
      li.textContent = p;
      return li;
    }));
  }

  function renderFunctions(st) {
    fill('functions', (st.functions || []).map(function (f) {
      return row([
        cell(f.name), cell(f.tenant), cell(rate(f, st), { cls: 'n' }),
        cell(quantile(f, 0.5), { cls: 'n' }), cell(quantile(f, 0.99), { cls: 'n' }),
        cell(f.scheduled ? String(f.running) : '—', { cls: 'n' }),
        cell(f.scheduled ? String(f.queued) : '—', { cls: 'n' }),
        cell(limit(f), { cls: 'n' }),
        cell(counted(f, f.succeeded), { cls: 'n' }), cell(counted(f, f.retriable), { cls: 'n' }),
        cell(counted(f, f.fatal), { cls: f.fatal ? 'n bad' : 'n' }),
        cell(guard(f.storm_guard), { cls: f.storm_guard && f.storm_guard.active ? 'bad' : '' })
      ]);
    }), 12, 'no functions configured');
  }

  function renderTailers(st) {
    var rows = [];
    (st.tailers || []).forEach(function (t) {
      var parts = t.partitions || [];
      var span = Math.max(parts.length, 1);
      var group = t.group + (t.member ? '' : ' (not a member)');
      var head = [
        cell(t.name + (t.ingest ? ' (ingest)' : ''), { span: span }), cell(t.topic, { span: span }), cell(t.function, { span: span }),
        cell(group, { span: span, cls: t.member ? '' : 'bad' }), cell(String(t.in_flight), { span: span, cls: 'n' })
      ];
      if (parts.length === 0) {
        rows.push(row(head.concat([cell('no partitions owned', { cols: 3, cls: 'muted' })])));
        return;
      }
      parts.forEach(function (p, i) {
        var cells = [cell(String(p.partition), { cls: 'n' }), cell(String(p.lag_records), { cls: 'n' }),
          cell(seconds(p.lag_seconds), { cls: 'n' })];
        rows.push(row(i === 0 ? head.concat(cells) : cells));
      });
    });
    fill('tailers', rows, 8, 'no source tailers on this node');
  }

  function renderRungs(st) {
    fill('rungs', (st.rungs || []).map(function (r) {
      return row([
        cell(r.name), cell(r.topic), cell(depth(r.depth), { cls: 'n' }),
        cell(oldestDue(r)), cell(lateness(r), { cls: 'n' }),
        cell(r.reading ? String(r.held) : '—', { cls: 'n' }), cell(r.reading ? String(r.in_flight) : '—', { cls: 'n' })
      ]);
    }), 7, 'no delay rungs on this node');
  }

  function renderDeadLetters(st) {
    var dl = st.dead_letters || {};
    text('dead-letter-topic', dl.topic || '');
    fill('dead-letter-counts', (dl.counts || []).map(function (c) {
      return row([cell(functionName(c.function)), cell(c.reason), cell(String(c.count), { cls: 'n bad' })]);
    }), 3, 'none');
    var empty = dl.latest ? 'none' : (dl.topic ? 'not readable now (see Problems)' : 'this node reads no Kafka');
    fill('dead-letters', (dl.latest || []).map(function (d) {
      return row([
        cell(when(d.time)), cell(functionName(d.function)), cell(d.reason), cell(String(d.attempt), { cls: 'n' }),
        cell(d.error, { cls: 'error' }), cell(d.origin), cell(d.key), cell(d.partition + '/' + d.offset)
      ]);
    }), 8, empty);
  }

  function render(st) {
    renderHeader(st);
    renderFunctions(st);
    renderTailers(st);
    renderRungs(st);
    renderDeadLetters(st);
  }

  // --- the refresh loop ---

  var timer = null;

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, interval);
  }

  function refresh() {
    if (document.hidden) { // nobody looks: ask the node for nothing until someone does
      timer = null;
      return;
    }
    fetch('status.json', { cache: 'no-store', headers: { Accept: 'application/json' } })
      .then(function (resp) {
        if (!resp.ok) throw new Error('status.json answered HTTP ' + resp.status);
        return resp.json();
      })
      .then(function (st) {
        render(st);
        previous = st;
        refreshes++;
        body.dataset.refreshes = String(refreshes);
        text('live', 'live, every ' + interval / 1000 + 's', 'good');
      })
      .catch(function (err) {
        // Shown on the page rather than logged: a node that stops is not a page error.
        text('live', 'not updating: ' + (err && err.message ? err.message : String(err)) + '; showing the last data', 'bad');
      })
      .then(schedule);
  }

  document.addEventListener('visibilitychange', function () {
    if (!document.hidden && timer === null) refresh();
  });
  refresh();
})();
