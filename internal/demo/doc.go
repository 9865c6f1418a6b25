// Package demo holds the built-in demo functions that `kasync dev` and `kasync worker`
// serve, so a new user sees events run without writing code: echo logs each event,
// fail fails every attempt (to watch retries and the dead letter), sleep imitates a slow
// downstream. Its only invariant: the functions are deterministic given their input.
package demo
