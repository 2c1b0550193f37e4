//! The outbound URL guard: the one place that decides which URLs Siteline may contact on a
//! user's behalf, and the HTTP client that enforces the decision.
//!
//! Every outbound request to a URL that a user or tenant supplied, such as a knowledge fetch or
//! an alert webhook, goes through [`GuardedClient`], so server-side request forgery needs a bug
//! here rather than a missed check somewhere else. The guard has two layers:
//!
//! - [`check_url`] parses the URL as browsers do, checks scheme, credentials, port and the
//!   optional host allowlist, resolves the host and refuses the URL when any resolved address is
//!   loopback, private, link-local, a cloud metadata service or another special-purpose range.
//!   IPv6 forms that embed an IPv4 address (IPv4-mapped, well-known NAT64, 6to4) are judged by
//!   that IPv4 address, and forms whose IPv4 target cannot be judged reliably (IPv4-compatible,
//!   local-use NAT64, Teredo) are refused outright. [`Refusal::reason_code`] returns a stable
//!   code for APIs.
//! - [`GuardedClient`] sends each request, and each redirect hop, only to the addresses the check
//!   accepted, with timeouts, a body size cap and a content-type allowlist.
//!
//! `Policy::loopback_exceptions` exists for development and tests only: it admits exact loopback
//! addresses and ports, such as a test's own server on `127.0.0.1:41234`.

mod client;
mod guard;

pub(crate) use client::{parse_retry_after, read_capped, CappedReadError};
pub use client::{FetchError, Fetched, GuardedClient, USER_AGENT};
pub use guard::{
    check_url, parse_loopback_exceptions, BlockedRange, Policy, Refusal, Resolve, StaticResolver,
    SystemResolver, Vetted,
};
pub use url::Url;
