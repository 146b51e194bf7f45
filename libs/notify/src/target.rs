//! The one rule about where notifications may go (server-side request forgery): outside
//! dev mode, a channel must not reach loopback, link-local, private, shared (CGNAT) or
//! otherwise special addresses, so that a webhook cannot become a way into the cluster
//! or to a cloud metadata endpoint. `CUDLY_NOTIFY_ALLOW_PRIVATE_TARGETS=true` lifts it.
//!
//! It is checked when a channel is created ([`check_target`]) and again at every
//! delivery, where [`GuardedResolver`] is the HTTP client's DNS resolver: the addresses
//! it checks are the only ones the client may connect to, so a name that resolves to a
//! public address at creation and to a private one later (DNS rebinding) is refused.
//! A URL naming an IP literal skips DNS, so deliveries check it with [`check_literal`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use cudly_common::ApiError;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether private and special addresses may be targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivateTargets {
    /// Production: refused.
    Refused,
    /// Dev mode and tests (receivers on 127.0.0.1), or the operator's explicit choice.
    Allowed,
}

/// Why a target was refused. The text names neither the URL nor the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("the target resolves to a loopback, link-local, private or reserved address")]
    Forbidden,
    #[error("the target's host does not resolve")]
    Unresolvable,
    #[error("the target has no host")]
    NoHost,
}

impl From<TargetError> for ApiError {
    fn from(error: TargetError) -> Self {
        ApiError::invalid_field("target", error)
    }
}

/// Returns true when `ip` is an address no notification may reach outside dev mode.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback() // 127/8
        || ip.is_private() // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local() // 169.254/16: cloud metadata lives here
        || ip.is_broadcast()
        || ip.is_multicast() // 224/4
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (b & 0xc0) == 64) // 100.64/10, shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // 192.0.0/24, IETF protocol assignments
        || (a == 198 && (b & 0xfe) == 18) // 198.18/15, benchmarking
        || a >= 240 // 240/4, reserved
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    if let Some(v4) = embedded_v4(ip) {
        return is_forbidden_v4(v4);
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast() // ff00::/8
        || (segments[0] & 0xffc0) == 0xfe80 // fe80::/10, link-local
        || (segments[0] & 0xffc0) == 0xfec0 // fec0::/10, site-local (deprecated)
        || (segments[0] & 0xfe00) == 0xfc00 // fc00::/7, unique local
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // 2001:db8::/32, documentation
}

/// Returns the IPv4 address an IPv6 address stands for, where it embeds one that a
/// packet may end up at: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`,
/// deprecated), NAT64 (`64:ff9b::/96`) and 6to4 (`2002:AABB:CCDD::/48`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let segments = ip.segments();
    let octets = ip.octets();
    let tail = Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]);
    if let Some(mapped) = ip.to_ipv4_mapped() {
        return Some(mapped);
    }
    let high_zero = segments[..6].iter().all(|segment| *segment == 0);
    // `::` and `::1` are themselves, not IPv4-compatible forms of 0.0.0.0 and 0.0.0.1.
    if high_zero && !ip.is_unspecified() && !ip.is_loopback() {
        return Some(tail);
    }
    if segments[0] == 0x0064 && segments[1] == 0xff9b && segments[2..6].iter().all(|s| *s == 0) {
        return Some(tail);
    }
    if segments[0] == 0x2002 {
        return Some(Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5]));
    }
    None
}

/// Refuses `addresses` when any of them is forbidden under `policy` (a name resolving
/// to a public and a private address is refused whole), or when there are none.
fn checked(
    policy: PrivateTargets,
    addresses: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, TargetError> {
    if addresses.is_empty() {
        return Err(TargetError::Unresolvable);
    }
    if policy == PrivateTargets::Refused && addresses.iter().any(|addr| is_forbidden(addr.ip())) {
        return Err(TargetError::Forbidden);
    }
    Ok(addresses)
}

/// Returns the IP literal a URL names, if it names one rather than a domain. The URL
/// parser already turned numeric hosts such as `0x7f.1` into dotted IPv4, and writes
/// IPv6 literals in brackets.
fn literal_ip(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Checks an IP-literal URL without DNS (deliveries: the resolver never sees literals).
/// A URL naming a domain passes: [`GuardedResolver`] checks it when connecting.
pub fn check_literal(policy: PrivateTargets, url: &Url) -> Result<(), TargetError> {
    if url.host_str().is_none() {
        return Err(TargetError::NoHost);
    }
    match literal_ip(url) {
        Some(ip) => checked(policy, vec![SocketAddr::new(ip, 0)]).map(|_| ()),
        None => Ok(()),
    }
}

/// Checks a channel's target when it is created: an IP literal directly, a domain by
/// resolving it now.
pub async fn check_target(policy: PrivateTargets, url: &Url) -> Result<(), TargetError> {
    check_literal(policy, url)?;
    if literal_ip(url).is_some() || policy == PrivateTargets::Allowed {
        return Ok(());
    }
    let host = url.host_str().ok_or(TargetError::NoHost)?;
    let port = url.port_or_known_default().unwrap_or(443);
    lookup_checked(policy, host, port).await.map(|_| ())
}

/// Resolves `host` and applies the rule to every address.
async fn lookup_checked(
    policy: PrivateTargets,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, TargetError> {
    let addresses = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| TargetError::Unresolvable)?
        .collect();
    checked(policy, addresses)
}

/// The HTTP client's DNS resolver: resolves with the system resolver and hands the
/// client only addresses the rule allows, so it connects to nothing else.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: PrivateTargets,
}

impl GuardedResolver {
    pub fn new(policy: PrivateTargets) -> Arc<Self> {
        Arc::new(Self { policy })
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(resolve_for_client(self.policy, name))
    }
}

async fn resolve_for_client(
    policy: PrivateTargets,
    name: Name,
) -> Result<Addrs, Box<dyn std::error::Error + Send + Sync>> {
    // Port 0: the client puts the URL's port in.
    let addresses = lookup_checked(policy, name.as_str(), 0).await?;
    let addrs: Addrs = Box::new(addresses.into_iter());
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(text: &str) -> bool {
        is_forbidden(text.parse().unwrap())
    }

    #[test]
    fn private_and_special_ipv4_ranges_are_forbidden() {
        for address in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.8",
            "198.18.0.1",
            "198.19.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
        ] {
            assert!(forbidden(address), "{address}");
        }
    }

    #[test]
    fn public_ipv4_addresses_are_allowed() {
        for address in [
            "8.8.8.8",
            "1.1.1.1",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.0.1",
            "192.169.0.1",
            "198.20.0.1",
            "11.0.0.1",
        ] {
            assert!(!forbidden(address), "{address}");
        }
    }

    #[test]
    fn private_and_special_ipv6_ranges_are_forbidden() {
        for address in [
            "::",
            "::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "fc00::1",
            "fdff:ffff::1",
            "ff02::1",
            "2001:db8::1",
            // IPv4-mapped, -compatible, NAT64 and 6to4 forms of forbidden IPv4 addresses.
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:c0a8:0101::1",
        ] {
            assert!(forbidden(address), "{address}");
        }
    }

    #[test]
    fn public_ipv6_addresses_are_allowed() {
        for address in [
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
            "fe7f::1",
        ] {
            assert!(!forbidden(address), "{address}");
        }
    }

    #[test]
    fn literals_are_checked_without_dns() {
        let loopback = Url::parse("https://127.0.0.1:8443/hook").unwrap();
        assert_eq!(
            check_literal(PrivateTargets::Refused, &loopback),
            Err(TargetError::Forbidden)
        );
        assert_eq!(check_literal(PrivateTargets::Allowed, &loopback), Ok(()));
        let mapped = Url::parse("http://[::ffff:7f00:1]/").unwrap();
        assert_eq!(
            check_literal(PrivateTargets::Refused, &mapped),
            Err(TargetError::Forbidden)
        );
        let domain = Url::parse("https://example.com/").unwrap();
        assert_eq!(check_literal(PrivateTargets::Refused, &domain), Ok(()));
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_unless_allowed() {
        let url = Url::parse("https://localhost/hook").unwrap();
        assert_eq!(
            check_target(PrivateTargets::Refused, &url).await,
            Err(TargetError::Forbidden)
        );
        assert_eq!(check_target(PrivateTargets::Allowed, &url).await, Ok(()));
        let refused = GuardedResolver::new(PrivateTargets::Refused)
            .resolve("localhost".parse().unwrap())
            .await;
        assert!(refused.is_err());
        let allowed = GuardedResolver::new(PrivateTargets::Allowed)
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap();
        assert!(allowed.into_iter().all(|addr| addr.ip().is_loopback()));
    }
}
