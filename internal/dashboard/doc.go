// Package dashboard owns the live dashboard a node serves at its http_listen address:
// one page of HTML rendered on the server with html/template from a status snapshot
// (package nodestatus), the snapshot as JSON, and the page's CSS and JavaScript, all
// embedded in the binary (no CDN, no framework, nothing fetched from elsewhere).
//
// Routes of New's handler:
//
//	GET /             the page, rendered with a snapshot taken for the request, so it
//	                  is complete without JavaScript
//	GET /status.json  the snapshot as JSON (nodestatus.Status)
//	GET /assets/...   dashboard.css, dashboard.js, favicon.svg
//
// The script fetches status.json every 2 seconds and rebuilds the tables from it
// with DOM text nodes (never HTML strings); it computes each function's rate from
// two consecutive snapshots. While a fetch fails the page says so and keeps the last
// data.
//
// Guarantees:
//
//  1. Text from the snapshot (error messages, keys, names) is escaped on the server by
//     html/template and inserted as text by the script: a dead letter's error cannot
//     inject markup or script (TestPageEscapesErrorText). Every response carries a
//     Content-Security-Policy that allows only the dashboard's own script and styles.
//  2. The page loads without console errors and shows new dead letters without a
//     reload, in a real browser (internal/node's TestDashboardInChromium).
//  3. A fact the node could not read is shown as "unknown", never as 0 or as none: a
//     rung's depth, and its oldest due and lateness, which are "—" only when nothing
//     waits on it (TestPageWithoutJavaScript).
//  4. The dashboard reads only its Source: it imports no part of the engine, so it can
//     be tested with a fake, and internal/node, which wires it, is its only importer.
package dashboard
