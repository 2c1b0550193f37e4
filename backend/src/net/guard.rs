//! The decision half of the outbound URL guard: which URLs, host names and addresses Siteline may
//! contact.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use ipnet::{Ipv4Net, Ipv6Net};
use url::{Host, Url};

/// Outbound request rules shared by [`check_url`] and the guarded HTTP client.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Accept only `https` URLs. When false, `http` is accepted too.
    pub https_only: bool,
    /// Ports a URL may use, whether written in the URL or implied by its scheme.
    pub allowed_ports: Vec<u16>,
    /// When set, only these hosts and their subdomains pass. Entries are host names or IP
    /// addresses (IPv6 in brackets) without wildcards, normalized like URL hosts, so
    /// `example.com` also accepts `docs.example.com`. An entry that is not a valid host matches
    /// nothing. Addresses of accepted hosts are still checked.
    pub allowed_hosts: Option<Vec<String>>,
    /// For development and tests only: loopback addresses with ports (such as `127.0.0.1:41234`)
    /// that a fetch may reach, so tests can talk to servers they started. Each entry admits that
    /// exact address and port and nothing else: other loopback ports, loopback embedded in an
    /// IPv6 address and every other refused range stay refused. While the list is not empty the
    /// `localhost` names are resolved instead of refused, and their addresses must match an entry
    /// too. Leave it empty in production.
    pub loopback_exceptions: Vec<SocketAddr>,
    /// Time allowed to open each connection.
    pub connect_timeout: Duration,
    /// Time allowed for a whole request: resolution, every redirect hop and reading the body.
    pub total_timeout: Duration,
    /// Redirects a fetch follows before it fails. POST requests follow none.
    pub max_redirects: usize,
    /// Largest response body a fetch reads, in bytes.
    pub max_body_bytes: usize,
    /// MIME type essences (such as `text/html`) a fetch accepts. Parameters such as `charset`
    /// are ignored when comparing, and an empty list rejects every response.
    pub allowed_content_types: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            https_only: false,
            allowed_ports: vec![80, 443],
            allowed_hosts: None,
            loopback_exceptions: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(30),
            max_redirects: 5,
            // Knowledge documents are web pages and manuals; 10 MiB fits a PDF manual of a few
            // hundred pages while bounding the memory one fetch can take.
            max_body_bytes: 10 * 1024 * 1024,
            allowed_content_types: [
                "text/html",
                "application/xhtml+xml",
                "text/plain",
                "text/markdown",
                "text/csv",
                "application/pdf",
                "application/json",
                "application/xml",
                "text/xml",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// Host name resolution used by [`check_url`]. It is a trait so tests can inject a fixed table
/// and never make real DNS lookups.
#[async_trait]
pub trait Resolve: Send + Sync {
    /// Resolves `host`, a normalized domain name (never an IP literal), to its addresses.
    async fn resolve(&self, host: &str) -> io::Result<Vec<IpAddr>>;
}

/// Resolver backed by the operating system's resolver, through tokio's `lookup_host`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait]
impl Resolve for SystemResolver {
    async fn resolve(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        // lookup_host needs a port; it does not affect the addresses returned.
        let addrs = tokio::net::lookup_host((host, 0)).await?;
        Ok(addrs.map(|addr| addr.ip()).collect())
    }
}

/// Resolver that returns addresses from a fixed table, for tests. A name missing from the table fails to
/// resolve with `NotFound`.
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    table: HashMap<String, Vec<IpAddr>>,
}

impl StaticResolver {
    /// Creates a resolver with an empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the addresses returned for `host`, matched case-insensitively. An empty list makes
    /// the name resolve to no addresses.
    pub fn with(mut self, host: &str, addrs: &[IpAddr]) -> Self {
        self.table.insert(host.to_ascii_lowercase(), addrs.to_vec());
        self
    }
}

#[async_trait]
impl Resolve for StaticResolver {
    async fn resolve(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        self.table
            .get(&host.to_ascii_lowercase())
            .cloned()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("host {host} is not in the static resolver's table"),
                )
            })
    }
}

/// A URL that passed the guard, with every socket address it resolved to. All of them were
/// checked, and a client must connect only to these.
#[derive(Debug, Clone)]
pub struct Vetted {
    url: Url,
    addrs: Vec<SocketAddr>,
}

impl Vetted {
    /// Returns the parsed, normalized URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Returns the checked addresses with the URL's port, sorted and without duplicates.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }
}

/// A special-purpose address range that the guard refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockedRange {
    /// Stable reason code, such as `private_address`.
    pub code: &'static str,
    /// The range, worded to complete "address X is ...", such as
    /// "in a private range (10.0.0.0/8)".
    pub description: &'static str,
}

/// The guard's reason for refusing a URL.
///
/// `Display` is a sentence naming the URL, the value at fault and the fix. The URL is shown
/// without its user name, password, query and fragment, so a token in those parts never reaches a
/// log. [`Refusal::reason_code`] returns a stable short code for APIs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The text is not an absolute URL.
    #[error("refused URL {url:?}: it is not a valid absolute URL ({reason}); send an absolute http or https URL")]
    InvalidUrl { url: String, reason: String },

    /// The scheme is not http or https, or not https under an https-only policy.
    #[error("refused URL {url}: scheme {scheme} is not allowed; {}", scheme_hint(.https_only))]
    BadScheme {
        url: String,
        scheme: String,
        https_only: bool,
    },

    /// The URL carries a user name or password.
    #[error("refused URL {url}: it contains a user name or password; remove the credentials from the URL")]
    Userinfo { url: String },

    /// The port is not in the policy's allowed ports.
    #[error("refused URL {url}: port {port} is not allowed; use one of ports {}", join_ports(.allowed))]
    PortNotAllowed {
        url: String,
        port: u16,
        allowed: Vec<u16>,
    },

    /// The policy has a host allowlist and the host is not on it.
    #[error("refused URL {url}: host {host} is not in the allowed hosts; use a listed host or add it to the list")]
    HostNotAllowed { url: String, host: String },

    /// The host name is a cloud metadata service name.
    #[error("refused URL {url}: host {host} is a cloud metadata service name")]
    MetadataHost { url: String, host: String },

    /// The host name only has a meaning on the local machine or a private network.
    #[error(
        "refused URL {url}: host {host} is a name for the local machine or a private network \
         (localhost, a single label, .local, .internal or .home.arpa); use a public host name"
    )]
    InternalHost { url: String, host: String },

    /// The host name did not resolve, or resolved to no addresses.
    #[error("refused URL {url}: host {host} did not resolve ({detail}); check the host name")]
    Unresolvable {
        url: String,
        host: String,
        detail: String,
    },

    /// The host is, or resolved to, an address in a refused range.
    #[error("refused URL {url}: {}; use a host with a public address", describe_address(.addr, .embedded, .range))]
    Address {
        url: String,
        addr: IpAddr,
        /// The IPv4 address embedded in `addr` that fell in `range`, for IPv4-mapped, NAT64 and
        /// 6to4 addresses.
        embedded: Option<Ipv4Addr>,
        range: BlockedRange,
    },
}

impl Refusal {
    /// Returns a stable short code for the reason, such as `bad_scheme` or `private_address`.
    ///
    /// The codes are `invalid_url`, `bad_scheme`, `userinfo`, `port_not_allowed`,
    /// `host_not_allowed`, `metadata_address`, `internal_host`, `unresolvable`, and for addresses
    /// `loopback_address`, `private_address`, `link_local_address`, `shared_address`,
    /// `multicast_address`, `broadcast_address`, `reserved_address`, `unspecified_address`,
    /// `documentation_address`, `benchmarking_address`, `transition_address` and
    /// `metadata_address`.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Refusal::InvalidUrl { .. } => "invalid_url",
            Refusal::BadScheme { .. } => "bad_scheme",
            Refusal::Userinfo { .. } => "userinfo",
            Refusal::PortNotAllowed { .. } => "port_not_allowed",
            Refusal::HostNotAllowed { .. } => "host_not_allowed",
            Refusal::MetadataHost { .. } => "metadata_address",
            Refusal::InternalHost { .. } => "internal_host",
            Refusal::Unresolvable { .. } => "unresolvable",
            Refusal::Address { range, .. } => range.code,
        }
    }
}

fn scheme_hint(https_only: &bool) -> &'static str {
    if *https_only {
        "use https"
    } else {
        "use http or https"
    }
}

fn join_ports(ports: &[u16]) -> String {
    let texts: Vec<String> = ports.iter().map(u16::to_string).collect();
    texts.join(", ")
}

fn describe_address(addr: &IpAddr, embedded: &Option<Ipv4Addr>, range: &BlockedRange) -> String {
    match embedded {
        Some(v4) => format!(
            "address {addr} embeds IPv4 address {v4}, which is {}",
            range.description
        ),
        None => format!("address {addr} is {}", range.description),
    }
}

/// Checks `raw` against `policy` and returns the parsed URL with the addresses to connect to.
///
/// The host is parsed as browsers parse it (WHATWG URL), so numeric, octal, hex and short IPv4
/// forms and IDNA names are normalized before any rule applies. A domain name is resolved through
/// `resolver`, and every address it returns must pass: one refused address refuses the URL,
/// because a client could connect to any of them. IP literals are not resolved.
pub async fn check_url(
    raw: &str,
    policy: &Policy,
    resolver: &dyn Resolve,
) -> Result<Vetted, Refusal> {
    let url = Url::parse(raw).map_err(|err| Refusal::InvalidUrl {
        url: shorten(raw),
        reason: err.to_string(),
    })?;
    let redacted_url = redact_url(&url);

    let scheme = url.scheme();
    let scheme_allowed = scheme == "https" || (scheme == "http" && !policy.https_only);
    if !scheme_allowed {
        return Err(Refusal::BadScheme {
            url: redacted_url,
            scheme: scheme.to_string(),
            https_only: policy.https_only,
        });
    }

    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refusal::Userinfo { url: redacted_url });
    }

    // http and https URLs always have a host and a default port, so these only guard against a
    // parser change.
    let (Some(host), Some(port)) = (url.host(), url.port_or_known_default()) else {
        return Err(Refusal::InvalidUrl {
            url: redacted_url,
            reason: "it has no host or port".to_string(),
        });
    };
    // A port outside the list passes here only when an exception names it; each resolved
    // address must then be that exception, checked below.
    let port_listed = policy.allowed_ports.contains(&port);
    let port_excepted = policy
        .loopback_exceptions
        .iter()
        .any(|exception| exception.port() == port);
    if !port_listed && !port_excepted {
        return Err(Refusal::PortNotAllowed {
            url: redacted_url,
            port,
            allowed: policy.allowed_ports.clone(),
        });
    }

    if let Some(allowed) = &policy.allowed_hosts {
        if !host_is_listed(&host, allowed) {
            return Err(Refusal::HostNotAllowed {
                url: redacted_url,
                host: host.to_string(),
            });
        }
    }

    let ips = match host {
        Host::Ipv4(ip) => vec![IpAddr::V4(ip)],
        Host::Ipv6(ip) => vec![IpAddr::V6(ip)],
        Host::Domain(name) => {
            check_name(name, policy, &redacted_url)?;
            resolve_name(name, resolver, &redacted_url).await?
        }
    };

    for &ip in &ips {
        if policy
            .loopback_exceptions
            .contains(&SocketAddr::new(ip, port))
        {
            continue;
        }
        if !port_listed {
            return Err(Refusal::PortNotAllowed {
                url: redacted_url,
                port,
                allowed: policy.allowed_ports.clone(),
            });
        }
        if let Err(blocked) = check_address(ip) {
            return Err(Refusal::Address {
                url: redacted_url,
                addr: ip,
                embedded: blocked.embedded,
                range: blocked.range,
            });
        }
    }

    let mut addrs: Vec<SocketAddr> = ips.iter().map(|&ip| SocketAddr::new(ip, port)).collect();
    addrs.sort();
    addrs.dedup();
    Ok(Vetted { url, addrs })
}

/// Parses a comma-separated list of loopback exceptions such as `127.0.0.1:41234,[::1]:8080`
/// for [`Policy::loopback_exceptions`]; the error names the entry and the accepted form.
pub fn parse_loopback_exceptions(text: &str) -> Result<Vec<SocketAddr>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let addr: SocketAddr = entry.parse().map_err(|_| {
                format!("{entry:?} is not an address with a port, such as 127.0.0.1:8080")
            })?;
            let loopback = match addr.ip() {
                IpAddr::V4(v4) => v4.is_loopback(),
                IpAddr::V6(v6) => v6 == Ipv6Addr::LOCALHOST,
            };
            if !loopback || addr.port() == 0 {
                return Err(format!(
                    "{entry:?} is not a loopback address with a port; only 127.0.0.0/8 and [::1] \
                     with a port from 1 to 65535 may be listed, for tests and development"
                ));
            }
            Ok(addr)
        })
        .collect()
}

/// Formats `url` for messages and logs: without user name, password, query and fragment, which
/// may carry secrets. A removed query shows as `?...`.
pub(crate) fn redact_url(url: &Url) -> String {
    let mut redacted = url.clone();
    // Both setters fail only for URLs that cannot have credentials, which then have none to hide.
    let _ = redacted.set_username("");
    let _ = redacted.set_password(None);
    let had_query = redacted.query().is_some();
    redacted.set_query(None);
    redacted.set_fragment(None);
    let mut text = redacted.to_string();
    if had_query {
        text.push_str("?...");
    }
    text
}

/// Formats text that did not parse as a URL for a message, cut to 200 characters.
pub(crate) fn shorten(raw: &str) -> String {
    const MAX_CHARS: usize = 200;
    if raw.chars().count() <= MAX_CHARS {
        return raw.to_string();
    }
    let mut text: String = raw.chars().take(MAX_CHARS).collect();
    text.push_str("...");
    text
}

fn trim_root_dot(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

fn host_is_listed(host: &Host<&str>, allowed: &[String]) -> bool {
    allowed.iter().any(|entry| {
        let entry = trim_root_dot(entry.trim());
        match (Host::parse(entry), host) {
            (Ok(Host::Domain(listed)), Host::Domain(name)) => {
                let name = trim_root_dot(name);
                name == listed || name.ends_with(&format!(".{listed}"))
            }
            (Ok(Host::Ipv4(listed)), Host::Ipv4(ip)) => listed == *ip,
            (Ok(Host::Ipv6(listed)), Host::Ipv6(ip)) => listed == *ip,
            _ => false,
        }
    })
}

/// Names of cloud metadata services: Google Cloud's and its short form, and AWS's EC2 names.
const METADATA_NAMES: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "instance-data",
    "instance-data.ec2.internal",
];

/// Suffixes that public DNS never serves: `localhost` (RFC 6761), `local` (mDNS, RFC 6762),
/// `home.arpa` (RFC 8375) and `internal` (reserved by ICANN for private use in 2024).
const LOCAL_SUFFIXES: &[&str] = &["localhost", "local", "home.arpa", "internal"];

/// Refuses host names that point inside the machine or network before resolving them. The
/// addresses would be refused anyway in most setups, but a split-horizon resolver can map such
/// names to addresses that look public.
fn check_name(name: &str, policy: &Policy, redacted_url: &str) -> Result<(), Refusal> {
    let bare = trim_root_dot(name);
    if METADATA_NAMES.contains(&bare) {
        return Err(Refusal::MetadataHost {
            url: redacted_url.to_string(),
            host: name.to_string(),
        });
    }

    let has_suffix = |suffix: &str| bare == suffix || bare.ends_with(&format!(".{suffix}"));
    if !policy.loopback_exceptions.is_empty() && has_suffix("localhost") {
        return Ok(());
    }
    let single_label = !bare.contains('.');
    if single_label || LOCAL_SUFFIXES.iter().any(|suffix| has_suffix(suffix)) {
        return Err(Refusal::InternalHost {
            url: redacted_url.to_string(),
            host: name.to_string(),
        });
    }
    Ok(())
}

async fn resolve_name(
    name: &str,
    resolver: &dyn Resolve,
    redacted_url: &str,
) -> Result<Vec<IpAddr>, Refusal> {
    let unresolvable = |detail: String| Refusal::Unresolvable {
        url: redacted_url.to_string(),
        host: name.to_string(),
        detail,
    };
    let ips = resolver
        .resolve(name)
        .await
        .map_err(|err| unresolvable(err.to_string()))?;
    if ips.is_empty() {
        return Err(unresolvable("no addresses".to_string()));
    }
    Ok(ips)
}

/// A refused address: the range it fell in, and the embedded IPv4 address that fell in it when
/// the address is an IPv6 form carrying one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Blocked {
    embedded: Option<Ipv4Addr>,
    range: BlockedRange,
}

const fn range(code: &'static str, description: &'static str) -> BlockedRange {
    BlockedRange { code, description }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

const fn v6(segments: [u16; 8], prefix: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), prefix)
}

const METADATA: BlockedRange = range("metadata_address", "a cloud metadata service address");

/// Metadata and platform service addresses that a fetch could use to read cloud credentials.
/// 169.254.169.254 serves instance metadata on AWS, Google Cloud, Azure and OpenStack,
/// 169.254.170.2 serves AWS ECS task credentials, 168.63.129.16 is Azure's platform endpoint
/// (outside every private range) and 100.100.100.200 is Alibaba Cloud's metadata service.
const V4_METADATA: &[Ipv4Addr] = &[
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(168, 63, 129, 16),
    Ipv4Addr::new(100, 100, 100, 200),
];

/// AWS's IPv6 instance metadata address.
const V6_METADATA: &[Ipv6Addr] = &[Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)];

/// Refused IPv4 ranges, from the IANA IPv4 special-purpose address registry. The first match
/// names the reason, so 255.255.255.255 precedes 240.0.0.0/4.
#[rustfmt::skip]
const V4_RANGES: &[(Ipv4Net, BlockedRange)] = &[
    (v4(0, 0, 0, 0, 8), range("unspecified_address", "in the \"this network\" range (0.0.0.0/8)")),
    (v4(10, 0, 0, 0, 8), range("private_address", "in a private range (10.0.0.0/8)")),
    (v4(100, 64, 0, 0, 10), range("shared_address", "in the carrier-grade NAT range (100.64.0.0/10)")),
    (v4(127, 0, 0, 0, 8), range("loopback_address", "in the loopback range (127.0.0.0/8)")),
    (v4(169, 254, 0, 0, 16), range("link_local_address", "in the link-local range (169.254.0.0/16)")),
    (v4(172, 16, 0, 0, 12), range("private_address", "in a private range (172.16.0.0/12)")),
    (v4(192, 0, 0, 0, 24), range("reserved_address", "in the IETF protocol assignments range (192.0.0.0/24)")),
    (v4(192, 0, 2, 0, 24), range("documentation_address", "in a documentation range (192.0.2.0/24)")),
    (v4(192, 88, 99, 0, 24), range("reserved_address", "in the deprecated 6to4 relay range (192.88.99.0/24)")),
    (v4(192, 168, 0, 0, 16), range("private_address", "in a private range (192.168.0.0/16)")),
    (v4(198, 18, 0, 0, 15), range("benchmarking_address", "in the benchmarking range (198.18.0.0/15)")),
    (v4(198, 51, 100, 0, 24), range("documentation_address", "in a documentation range (198.51.100.0/24)")),
    (v4(203, 0, 113, 0, 24), range("documentation_address", "in a documentation range (203.0.113.0/24)")),
    (v4(224, 0, 0, 0, 4), range("multicast_address", "in the multicast range (224.0.0.0/4)")),
    (v4(255, 255, 255, 255, 32), range("broadcast_address", "the broadcast address (255.255.255.255)")),
    (v4(240, 0, 0, 0, 4), range("reserved_address", "in the reserved range (240.0.0.0/4)")),
];

/// IPv6 ranges whose addresses embed an IPv4 address that a gateway or the host translates to.
/// NAT64 with the well-known prefix (RFC 6052) puts it in the last 32 bits, and 6to4 (RFC 3056)
/// puts it in bits 16 to 47. IPv4-mapped addresses are found with `Ipv6Addr::to_ipv4_mapped`.
const NAT64_WELL_KNOWN: Ipv6Net = v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);
const SIX_TO_FOUR: Ipv6Net = v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16);

/// Every allocated public IPv6 unicast address is in 2000::/3. Addresses outside it that no
/// earlier rule names are refused as reserved.
const GLOBAL_UNICAST: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);
const OUTSIDE_GLOBAL_UNICAST: BlockedRange = range(
    "reserved_address",
    "outside the global unicast range (2000::/3)",
);

/// Refused IPv6 ranges, from the IANA IPv6 special-purpose address registry, checked after the
/// embedded-IPv4 forms. The first match names the reason, so the exact addresses precede ::/96
/// and the narrower 2001:: ranges precede 2001::/23.
///
/// Transition forms whose IPv4 address cannot be checked reliably are refused outright with
/// `transition_address`: IPv4-compatible addresses (deprecated by RFC 4291), local-use NAT64
/// (whose prefix length varies by network) and Teredo (whose client address is obfuscated and
/// whose relays sit outside Siteline's control).
#[rustfmt::skip]
const V6_RANGES: &[(Ipv6Net, BlockedRange)] = &[
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), range("unspecified_address", "the unspecified address (::)")),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), range("loopback_address", "the loopback address (::1)")),
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 96), range("transition_address", "an IPv4-compatible address (::/96), which is deprecated")),
    (v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), range("transition_address", "in the local-use NAT64 range (64:ff9b:1::/48)")),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), range("reserved_address", "in the discard-only range (100::/64)")),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32), range("transition_address", "in the Teredo tunnel range (2001::/32)")),
    (v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48), range("benchmarking_address", "in the benchmarking range (2001:2::/48)")),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), range("reserved_address", "in the IETF protocol assignments range (2001::/23)")),
    (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), range("documentation_address", "in a documentation range (2001:db8::/32)")),
    (v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), range("documentation_address", "in a documentation range (3fff::/20)")),
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), range("private_address", "in the unique local range (fc00::/7)")),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), range("link_local_address", "in the link-local range (fe80::/10)")),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), range("private_address", "in the deprecated site-local range (fec0::/10)")),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), range("multicast_address", "in the multicast range (ff00::/8)")),
];

/// Checks one resolved or literal address against the refused ranges. The caller matches
/// loopback exceptions, because only it has the port.
fn check_address(ip: IpAddr) -> Result<(), Blocked> {
    match ip {
        IpAddr::V4(v4) => match classify_v4(v4) {
            Some(range) => Err(Blocked {
                embedded: None,
                range,
            }),
            None => Ok(()),
        },
        IpAddr::V6(v6) => check_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<BlockedRange> {
    if V4_METADATA.contains(&ip) {
        return Some(METADATA);
    }
    V4_RANGES
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|&(_, range)| range)
}

fn check_v6(ip: Ipv6Addr) -> Result<(), Blocked> {
    if V6_METADATA.contains(&ip) {
        return Err(Blocked {
            embedded: None,
            range: METADATA,
        });
    }

    // A connection to these forms ends at the embedded IPv4 address, so that address decides.
    if let Some(embedded) = embedded_ipv4(ip) {
        return match classify_v4(embedded) {
            Some(range) => Err(Blocked {
                embedded: Some(embedded),
                range,
            }),
            None => Ok(()),
        };
    }

    if let Some(&(_, range)) = V6_RANGES.iter().find(|(net, _)| net.contains(&ip)) {
        return Err(Blocked {
            embedded: None,
            range,
        });
    }
    if !GLOBAL_UNICAST.contains(&ip) {
        return Err(Blocked {
            embedded: None,
            range: OUTSIDE_GLOBAL_UNICAST,
        });
    }
    Ok(())
}

/// Returns the IPv4 address inside an IPv4-mapped (::ffff:0:0/96), well-known NAT64
/// (64:ff9b::/96) or 6to4 (2002::/16) address.
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(mapped) = ip.to_ipv4_mapped() {
        return Some(mapped);
    }
    let octets = ip.octets();
    if NAT64_WELL_KNOWN.contains(&ip) {
        return Some(Ipv4Addr::new(
            octets[12], octets[13], octets[14], octets[15],
        ));
    }
    if SIX_TO_FOUR.contains(&ip) {
        return Some(Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A public address from outside every special-purpose range. Tests only feed it to the
    /// decision through the fake resolver and never connect to it.
    const PUBLIC_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34));
    const PUBLIC_V6: IpAddr = IpAddr::V6(Ipv6Addr::new(
        0x2606, 0x2800, 0x220, 1, 0x248, 0x1893, 0x25c8, 0x1946,
    ));

    /// Resolver that fails the test when called, for inputs that must not be resolved.
    struct NoLookups;

    #[async_trait]
    impl Resolve for NoLookups {
        async fn resolve(&self, host: &str) -> io::Result<Vec<IpAddr>> {
            panic!("unexpected lookup of {host}: IP literals must not be resolved");
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address parses")
    }

    fn resolver() -> StaticResolver {
        StaticResolver::new()
            .with("example.com", &[PUBLIC_V4])
            .with("docs.example.com", &[PUBLIC_V4, PUBLIC_V6])
            .with("notexample.com", &[PUBLIC_V4])
            .with("example.com.evil.test", &[PUBLIC_V4])
            .with("xn--bcher-kva.example", &[PUBLIC_V4])
            .with("mixed.example.com", &[PUBLIC_V4, ip("10.0.0.5")])
            .with("empty.example.com", &[])
            .with("rebind.example.com", &[ip("127.0.0.1")])
            .with("private.example.com", &[ip("192.168.1.10")])
            .with("localhost", &[ip("127.0.0.1"), ip("::1")])
    }

    async fn check(raw: &str, policy: &Policy) -> Result<Vetted, Refusal> {
        check_url(raw, policy, &resolver()).await
    }

    async fn refusal_code(raw: &str, policy: &Policy) -> String {
        match check(raw, policy).await {
            Ok(vetted) => format!("allowed {:?}", vetted.addrs()),
            Err(refusal) => refusal.reason_code().to_string(),
        }
    }

    #[test]
    fn address_table_refuses_special_ranges() {
        let cases = [
            ("127.0.0.1", "loopback_address"),
            ("127.255.255.254", "loopback_address"),
            ("10.0.0.5", "private_address"),
            ("10.255.255.255", "private_address"),
            ("172.16.0.1", "private_address"),
            ("172.31.255.255", "private_address"),
            ("192.168.1.1", "private_address"),
            ("169.254.1.1", "link_local_address"),
            ("169.254.169.254", "metadata_address"),
            ("169.254.170.2", "metadata_address"),
            ("168.63.129.16", "metadata_address"),
            ("100.100.100.200", "metadata_address"),
            ("100.64.0.1", "shared_address"),
            ("100.127.255.255", "shared_address"),
            ("224.0.0.1", "multicast_address"),
            ("239.255.255.250", "multicast_address"),
            ("255.255.255.255", "broadcast_address"),
            ("240.0.0.1", "reserved_address"),
            ("254.1.2.3", "reserved_address"),
            ("0.0.0.0", "unspecified_address"),
            ("0.1.2.3", "unspecified_address"),
            ("192.0.2.1", "documentation_address"),
            ("198.51.100.7", "documentation_address"),
            ("203.0.113.9", "documentation_address"),
            ("198.18.0.1", "benchmarking_address"),
            ("198.19.255.1", "benchmarking_address"),
            ("192.0.0.8", "reserved_address"),
            ("192.0.0.192", "reserved_address"),
            ("192.88.99.1", "reserved_address"),
            ("::1", "loopback_address"),
            ("::", "unspecified_address"),
            ("fe80::1", "link_local_address"),
            ("febf::1", "link_local_address"),
            ("fc00::1", "private_address"),
            ("fd12:3456::1", "private_address"),
            ("fec0::1", "private_address"),
            ("ff02::1", "multicast_address"),
            ("ff0e::1", "multicast_address"),
            ("2001:db8::1", "documentation_address"),
            ("3fff::1", "documentation_address"),
            ("fd00:ec2::254", "metadata_address"),
            ("::ffff:10.0.0.5", "private_address"),
            ("::ffff:127.0.0.1", "loopback_address"),
            ("::ffff:169.254.169.254", "metadata_address"),
            ("::ffff:0.0.0.0", "unspecified_address"),
            ("::10.0.0.5", "transition_address"),
            ("::93.184.216.34", "transition_address"),
            ("64:ff9b::a00:5", "private_address"),
            ("64:ff9b::7f00:1", "loopback_address"),
            ("64:ff9b::a9fe:a9fe", "metadata_address"),
            ("64:ff9b:1::5db8:d822", "transition_address"),
            ("2002:a00:5::1", "private_address"),
            ("2002:7f00:1::1", "loopback_address"),
            ("2002:a9fe:a9fe::", "metadata_address"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "transition_address"),
            ("2001:2::1", "benchmarking_address"),
            ("2001:10::1", "reserved_address"),
            ("100::1", "reserved_address"),
            ("::ffff:0:a00:5", "reserved_address"),
            ("4000::1", "reserved_address"),
        ];
        for (text, expected) in cases {
            let result = check_address(ip(text));
            let code = result.map(|()| "allowed").unwrap_or_else(|b| b.range.code);
            assert_eq!(code, expected, "address {text}");
        }
    }

    #[test]
    fn address_table_allows_public_addresses() {
        let public = [
            "93.184.216.34",
            "1.1.1.1",
            "11.0.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.255.255",
            "192.167.255.255",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.255",
            "2606:2800:220:1:248:1893:25c8:1946",
            "2a00:1450:4001::1",
            "::ffff:93.184.216.34",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::1",
            "2001:200::1",
        ];
        for text in public {
            assert_eq!(check_address(ip(text)), Ok(()), "address {text}");
        }
    }

    #[test]
    fn embedded_ipv4_is_reported() {
        let blocked = check_address(ip("::ffff:10.0.0.5")).unwrap_err();
        assert_eq!(blocked.embedded, Some(Ipv4Addr::new(10, 0, 0, 5)));

        let blocked = check_address(ip("2002:a00:5::1")).unwrap_err();
        assert_eq!(blocked.embedded, Some(Ipv4Addr::new(10, 0, 0, 5)));

        let blocked = check_address(ip("64:ff9b::a00:5")).unwrap_err();
        assert_eq!(blocked.embedded, Some(Ipv4Addr::new(10, 0, 0, 5)));
    }

    #[tokio::test]
    async fn ipv4_host_forms_normalize_to_loopback() {
        let policy = Policy::default();
        let forms = [
            "http://127.0.0.1/",
            "http://0x7f.1/",
            "http://0x7f000001/",
            "http://017700000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://127.0.1/",
            "http://2130706433/",
            "http://0x7F.0x00.0x00.0x01/",
            "http://%31%32%37.0.0.1/",
            "http://\u{ff11}\u{ff12}\u{ff17}.\u{ff10}.\u{ff10}.\u{ff11}/",
        ];
        for raw in forms {
            let refusal = check_url(raw, &policy, &NoLookups).await.unwrap_err();
            let Refusal::Address { addr, .. } = &refusal else {
                panic!("{raw} was refused for another reason: {refusal}");
            };
            assert_eq!(*addr, ip("127.0.0.1"), "address parsed from {raw}");
            assert_eq!(
                refusal.reason_code(),
                "loopback_address",
                "reason for {raw}"
            );
        }
    }

    #[tokio::test]
    async fn ipv6_host_forms_are_checked() {
        let policy = Policy::default();
        let cases = [
            ("http://[::1]/", "loopback_address"),
            ("http://[0:0:0:0:0:0:0:1]/", "loopback_address"),
            ("http://[::ffff:127.0.0.1]/", "loopback_address"),
            ("http://[::ffff:7f00:1]/", "loopback_address"),
            ("http://[::ffff:a9fe:a9fe]/", "metadata_address"),
            ("http://[fe80::1]/", "link_local_address"),
            ("http://[fd00:ec2::254]/", "metadata_address"),
            ("http://[64:ff9b::10.0.0.1]/", "private_address"),
            ("http://[2002:c0a8:101::1]/", "private_address"),
        ];
        for (raw, expected) in cases {
            let result = check_url(raw, &policy, &NoLookups).await;
            assert_eq!(
                result.unwrap_err().reason_code(),
                expected,
                "reason for {raw}"
            );
        }
    }

    #[tokio::test]
    async fn other_ipv4_forms_are_checked() {
        let policy = Policy::default();
        let cases = [
            ("http://0/", "unspecified_address"),
            ("http://10.1/", "private_address"),
            ("http://0xa9fea9fe/", "metadata_address"),
            ("http://169.254.43518/", "metadata_address"),
            ("http://0xc0.0xa8.1.1/", "private_address"),
        ];
        for (raw, expected) in cases {
            let result = check_url(raw, &policy, &NoLookups).await;
            assert_eq!(
                result.unwrap_err().reason_code(),
                expected,
                "reason for {raw}"
            );
        }
    }

    #[tokio::test]
    async fn public_literal_is_allowed_without_lookup() {
        let vetted = check_url("https://93.184.216.34/page", &Policy::default(), &NoLookups)
            .await
            .unwrap();
        assert_eq!(vetted.addrs(), &[SocketAddr::new(PUBLIC_V4, 443)]);
        assert_eq!(vetted.url().as_str(), "https://93.184.216.34/page");
    }

    #[tokio::test]
    async fn idna_host_is_normalized() {
        let vetted = check("http://B\u{fc}cher.Example/doc", &Policy::default())
            .await
            .unwrap();
        assert_eq!(vetted.url().host_str(), Some("xn--bcher-kva.example"));
        assert_eq!(vetted.addrs(), &[SocketAddr::new(PUBLIC_V4, 80)]);

        let vetted = check(
            "http://\u{ff45}\u{ff58}\u{ff41}\u{ff4d}\u{ff50}\u{ff4c}\u{ff45}.com/",
            &Policy::default(),
        )
        .await
        .unwrap();
        assert_eq!(vetted.url().host_str(), Some("example.com"));
    }

    #[tokio::test]
    async fn resolved_name_is_allowed() {
        let vetted = check("https://docs.example.com/manual.pdf", &Policy::default())
            .await
            .unwrap();
        assert_eq!(
            vetted.addrs(),
            &[
                SocketAddr::new(PUBLIC_V4, 443),
                SocketAddr::new(PUBLIC_V6, 443)
            ]
        );
    }

    #[tokio::test]
    async fn name_with_one_private_address_is_refused() {
        let refusal = check("http://mixed.example.com/", &Policy::default())
            .await
            .unwrap_err();
        assert_eq!(refusal.reason_code(), "private_address");
        assert_eq!(
            refusal.to_string(),
            "refused URL http://mixed.example.com/: address 10.0.0.5 is in a private range \
             (10.0.0.0/8); use a host with a public address"
        );
    }

    #[tokio::test]
    async fn name_resolving_to_loopback_is_refused() {
        let policy = Policy::default();
        assert_eq!(
            refusal_code("http://rebind.example.com/", &policy).await,
            "loopback_address"
        );
        assert_eq!(
            refusal_code("http://private.example.com/", &policy).await,
            "private_address"
        );
    }

    #[tokio::test]
    async fn name_without_addresses_is_refused() {
        let policy = Policy::default();
        let refusal = check("http://empty.example.com/", &policy)
            .await
            .unwrap_err();
        assert_eq!(refusal.reason_code(), "unresolvable");
        assert!(refusal.to_string().contains("no addresses"), "{refusal}");

        let refusal = check("http://unknown.example.org/", &policy)
            .await
            .unwrap_err();
        assert_eq!(refusal.reason_code(), "unresolvable");
    }

    #[tokio::test]
    async fn literal_address_message_names_range() {
        let refusal = check_url("http://10.0.0.5/", &Policy::default(), &NoLookups)
            .await
            .unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "refused URL http://10.0.0.5/: address 10.0.0.5 is in a private range (10.0.0.0/8); \
             use a host with a public address"
        );

        let refusal = check_url("http://[::ffff:10.0.0.5]/", &Policy::default(), &NoLookups)
            .await
            .unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "refused URL http://[::ffff:a00:5]/: address ::ffff:10.0.0.5 embeds IPv4 address \
             10.0.0.5, which is in a private range (10.0.0.0/8); use a host with a public address"
        );
    }

    #[tokio::test]
    async fn allowlist_accepts_listed_hosts_and_subdomains() {
        let policy = Policy {
            allowed_hosts: Some(vec![
                "Example.com.".to_string(),
                "b\u{fc}cher.example".to_string(),
            ]),
            ..Policy::default()
        };
        assert!(check("http://example.com/", &policy).await.is_ok());
        assert!(check("http://docs.example.com/", &policy).await.is_ok());
        assert!(check("http://xn--bcher-kva.example/", &policy)
            .await
            .is_ok());
        assert_eq!(
            refusal_code("http://notexample.com/", &policy).await,
            "host_not_allowed"
        );
        assert_eq!(
            refusal_code("http://example.com.evil.test/", &policy).await,
            "host_not_allowed"
        );
        assert_eq!(
            refusal_code("http://93.184.216.34/", &policy).await,
            "host_not_allowed"
        );
    }

    #[tokio::test]
    async fn allowlist_still_checks_addresses() {
        let policy = Policy {
            allowed_hosts: Some(vec!["example.com".to_string()]),
            ..Policy::default()
        };
        assert_eq!(
            refusal_code("http://mixed.example.com/", &policy).await,
            "private_address"
        );
    }

    #[tokio::test]
    async fn allowlist_matches_ip_literals_exactly() {
        let policy = Policy {
            allowed_hosts: Some(vec!["93.184.216.34".to_string(), "10.0.0.5".to_string()]),
            ..Policy::default()
        };
        assert!(check("http://93.184.216.34/", &policy).await.is_ok());
        assert_eq!(
            refusal_code("http://10.0.0.5/", &policy).await,
            "private_address"
        );
        assert_eq!(
            refusal_code("http://example.com/", &policy).await,
            "host_not_allowed"
        );
    }

    #[tokio::test]
    async fn schemes_other_than_http_are_refused() {
        let policy = Policy::default();
        for raw in [
            "ftp://example.com/file",
            "file:///etc/passwd",
            "gopher://example.com/",
            "javascript:alert(1)",
            "data:text/plain,hello",
            "ws://example.com/",
        ] {
            assert_eq!(
                refusal_code(raw, &policy).await,
                "bad_scheme",
                "reason for {raw}"
            );
        }
    }

    #[tokio::test]
    async fn https_only_refuses_http() {
        let policy = Policy {
            https_only: true,
            ..Policy::default()
        };
        let refusal = check("http://example.com/", &policy).await.unwrap_err();
        assert_eq!(refusal.reason_code(), "bad_scheme");
        assert!(refusal.to_string().ends_with("use https"), "{refusal}");
        assert!(check("https://example.com/", &policy).await.is_ok());
    }

    #[tokio::test]
    async fn userinfo_is_refused_and_hidden() {
        let policy = Policy::default();
        let refusal = check("http://user:secret@example.com/", &policy)
            .await
            .unwrap_err();
        assert_eq!(refusal.reason_code(), "userinfo");
        assert!(!refusal.to_string().contains("secret"), "{refusal}");
        assert!(!refusal.to_string().contains("user:"), "{refusal}");

        assert_eq!(
            refusal_code("http://user@example.com/", &policy).await,
            "userinfo"
        );
    }

    #[tokio::test]
    async fn query_is_hidden_in_messages() {
        let refusal = check_url(
            "http://10.0.0.5/hook?token=secret#x",
            &Policy::default(),
            &NoLookups,
        )
        .await
        .unwrap_err();
        let message = refusal.to_string();
        assert!(
            message.starts_with("refused URL http://10.0.0.5/hook?...:"),
            "{message}"
        );
        assert!(!message.contains("secret"), "{message}");
    }

    #[tokio::test]
    async fn ports_follow_policy() {
        let policy = Policy::default();
        assert!(check("http://example.com:80/", &policy).await.is_ok());
        assert!(check("https://example.com:443/", &policy).await.is_ok());
        let refusal = check("http://example.com:8080/", &policy)
            .await
            .unwrap_err();
        assert_eq!(refusal.reason_code(), "port_not_allowed");
        assert!(refusal.to_string().contains("port 8080"), "{refusal}");
        assert!(refusal.to_string().contains("80, 443"), "{refusal}");

        let custom = Policy {
            allowed_ports: vec![8443],
            ..Policy::default()
        };
        assert!(check("https://example.com:8443/", &custom).await.is_ok());
        assert_eq!(
            refusal_code("https://example.com/", &custom).await,
            "port_not_allowed"
        );
    }

    #[tokio::test]
    async fn metadata_names_are_refused() {
        let policy = Policy::default();
        for raw in [
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.GOOGLE.INTERNAL./",
            "http://metadata/",
            "http://instance-data.ec2.internal/latest/",
        ] {
            assert_eq!(
                refusal_code(raw, &policy).await,
                "metadata_address",
                "reason for {raw}"
            );
        }
    }

    #[tokio::test]
    async fn internal_names_are_refused() {
        let policy = Policy::default();
        for raw in [
            "http://localhost/",
            "http://LOCALHOST./",
            "http://app.localhost/",
            "http://printer.local/",
            "http://intranet/",
            "http://router.home.arpa/",
            "http://db.corp.internal/",
        ] {
            assert_eq!(
                refusal_code(raw, &policy).await,
                "internal_host",
                "reason for {raw}"
            );
        }
    }

    #[tokio::test]
    async fn invalid_urls_are_refused() {
        let policy = Policy::default();
        for raw in [
            "",
            "not a url",
            "/relative/path",
            "http://",
            "http://exa mple.com/",
            "http://[fe80::1%25eth0]/",
            "http://[::1/",
        ] {
            assert_eq!(
                refusal_code(raw, &policy).await,
                "invalid_url",
                "reason for {raw:?}"
            );
        }
    }

    #[tokio::test]
    async fn loopback_exceptions_are_exact() {
        let policy = Policy {
            loopback_exceptions: vec![
                SocketAddr::new(ip("127.0.0.1"), 41234),
                SocketAddr::new(ip("::1"), 41235),
            ],
            ..Policy::default()
        };
        let vetted = check_url("http://127.0.0.1:41234/doc", &policy, &NoLookups)
            .await
            .unwrap();
        assert_eq!(vetted.addrs(), &[SocketAddr::new(ip("127.0.0.1"), 41234)]);
        assert!(check_url("http://[::1]:41235/", &policy, &NoLookups)
            .await
            .is_ok());
        // localhost resolves through the injected resolver, and its address must match too.
        let resolver = StaticResolver::new().with("localhost", &[ip("127.0.0.1")]);
        assert!(check_url("http://localhost:41234/", &policy, &resolver)
            .await
            .is_ok());

        let refused = [
            // The same address on another port, listed or not.
            ("http://127.0.0.1/", "loopback_address"),
            ("http://127.0.0.1:41235/", "port_not_allowed"),
            ("http://127.0.0.1:5432/", "port_not_allowed"),
            // Another loopback address on the excepted port.
            ("http://127.0.0.2:41234/", "port_not_allowed"),
            ("http://[::1]:41234/", "port_not_allowed"),
            // Loopback embedded in IPv6 forms is not the excepted address.
            ("http://[::ffff:127.0.0.1]:41234/", "port_not_allowed"),
            ("http://[::ffff:127.0.0.1]/", "loopback_address"),
            ("http://[64:ff9b::7f00:1]/", "loopback_address"),
            ("http://10.0.0.1/", "private_address"),
            ("http://169.254.169.254/", "metadata_address"),
            ("http://0.0.0.0/", "unspecified_address"),
            ("http://[fe80::1]/", "link_local_address"),
        ];
        for (raw, expected) in refused {
            let result = check_url(raw, &policy, &NoLookups).await;
            assert_eq!(
                result.unwrap_err().reason_code(),
                expected,
                "reason for {raw}"
            );
        }
        // A public name on the excepted port is refused: the port is only open to the exception.
        assert_eq!(
            refusal_code("http://docs.example.com:41234/", &policy).await,
            "port_not_allowed"
        );
        let mixed = StaticResolver::new().with("mixed.example.com", &[ip("127.0.0.1"), PUBLIC_V4]);
        assert_eq!(
            check_url("http://mixed.example.com:41234/", &policy, &mixed)
                .await
                .unwrap_err()
                .reason_code(),
            "port_not_allowed",
            "every resolved address must be an exception"
        );
        assert_eq!(
            refusal_code("http://metadata.google.internal/", &policy).await,
            "metadata_address"
        );
        assert_eq!(
            refusal_code("http://printer.local/", &policy).await,
            "internal_host"
        );
        // Without exceptions localhost is refused by name, before any lookup.
        assert_eq!(
            refusal_code("http://localhost:41234/", &Policy::default()).await,
            "port_not_allowed"
        );
        assert_eq!(
            refusal_code("http://localhost/", &Policy::default()).await,
            "internal_host"
        );
    }

    #[test]
    fn loopback_exceptions_parse_strictly() {
        assert_eq!(
            parse_loopback_exceptions(" 127.0.0.1:41234, [::1]:8080 ,").unwrap(),
            vec![
                SocketAddr::new(ip("127.0.0.1"), 41234),
                SocketAddr::new(ip("::1"), 8080)
            ]
        );
        assert_eq!(parse_loopback_exceptions("").unwrap(), vec![]);
        for bad in [
            "127.0.0.1",
            "10.0.0.1:80",
            "169.254.169.254:80",
            "localhost:80",
            "127.0.0.1:0",
        ] {
            let error = parse_loopback_exceptions(bad).unwrap_err();
            assert!(error.contains(bad), "{error}");
        }
    }

    #[tokio::test]
    async fn vetted_addresses_are_deduplicated() {
        let resolver = StaticResolver::new().with("twice.example.com", &[PUBLIC_V4, PUBLIC_V4]);
        let vetted = check_url("http://twice.example.com/", &Policy::default(), &resolver)
            .await
            .unwrap();
        assert_eq!(vetted.addrs(), &[SocketAddr::new(PUBLIC_V4, 80)]);
    }

    #[test]
    fn long_invalid_url_is_shortened() {
        let raw = "x".repeat(500);
        let shortened = shorten(&raw);
        assert_eq!(shortened.len(), 203);
        assert!(shortened.ends_with("..."));
    }
}
