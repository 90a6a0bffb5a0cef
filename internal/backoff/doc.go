// Package backoff computes reconnect and retry delays: capped exponential
// backoff with full jitter.
//
// Full jitter (a uniformly random delay between zero and the capped
// exponential bound) is what spreads a reconnect storm: when a server
// restarts, ten thousand agents that all lost their session at the same
// instant must not all come back at the same instant. A fixed exponential
// schedule would keep them synchronised forever; full jitter decorrelates
// them after the first attempt. See "Exponential Backoff And Jitter"
// (AWS Architecture Blog, 2015) for the comparison of jitter strategies.
//
// The random source is injected so tests are deterministic.
package backoff
