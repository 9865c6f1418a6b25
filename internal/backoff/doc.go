// Package backoff is the one retry delay of kasync's reconnect and re-send loops
// (SDK worker, gRPC push client, dead-letter writes): jittered exponential backoff and a
// sleep that ends with its context.
//
// Guarantees:
//
//  1. Next never returns more than Max nor, after Reset, starts above Min.
//  2. Jitter keeps a delay within [d/2, d), so clients cut off together spread out.
//  3. Sleep returns false as soon as its context is done, never later than the wait.
package backoff
