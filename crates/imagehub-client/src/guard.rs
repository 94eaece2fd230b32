//! Keeping imports from reaching into the hub's own network: a registry, a token realm
//! or a redirect may lead to a loopback, private or link-local address only when the
//! operator listed that host. Names are checked where they are resolved (a resolver
//! that drops such addresses), so a name that resolves differently the second time
//! cannot slip through; addresses written in URLs are checked before the request.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which hosts may resolve to non-public addresses.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    /// Host names and IP literals (without ports), lower case.
    allowed: Arc<HashSet<String>>,
    /// Every address may be reached (a command-line client on the user's own machine).
    everything: bool,
}

impl AddressPolicy {
    /// A policy allowing the hosts of `registries` (`host`, `host:port`, `[v6]:port`).
    pub fn allowing<'a>(registries: impl IntoIterator<Item = &'a str>) -> AddressPolicy {
        let allowed = registries.into_iter().map(|r| host_of(r).to_ascii_lowercase()).collect();
        AddressPolicy { allowed: Arc::new(allowed), everything: false }
    }

    /// A policy allowing every address.
    pub fn open() -> AddressPolicy {
        AddressPolicy { allowed: Arc::default(), everything: true }
    }

    fn allows(&self, host: &str) -> bool {
        self.everything
            || self
                .allowed
                .contains(&host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase())
    }

    /// Whether `url` may be requested: its host is allowed, a name (checked when it is
    /// resolved), or a public address.
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), String> {
        let Some(host) = url.host_str() else { return Err(format!("{url} has no host")) };
        if self.allows(host) {
            return Ok(());
        }
        match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            Ok(ip) if !is_public(ip) => Err(format!(
                "{host} is a private or local address; importing from it needs the operator to list it \
                 under [import.registries]"
            )),
            _ => Ok(()),
        }
    }
}

/// The host of `host`, `host:port` or `[v6]:port`.
fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.rsplit_once(':').map_or(registry, |(host, _)| host)
}

impl Resolve for AddressPolicy {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = policy.allows(&host);
            let usable: Vec<SocketAddr> =
                found.iter().copied().filter(|a| allowed || is_public(a.ip())).collect();
            if usable.is_empty() && !found.is_empty() {
                let message = format!(
                    "{host} resolves to a private or local address; importing from it needs the operator \
                     to list it under [import.registries]"
                );
                return Err(message.into());
            }
            let addrs: Addrs = Box::new(usable.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether an address is on the public internet (`Ipv4Addr::is_global` is not stable).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link local
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || (first == 0x0064 && ip.segments()[1] == 0xff9b)) // NAT64 to any IPv4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_and_private_addresses() {
        for public in ["8.8.8.8", "140.82.112.3", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(public.parse().expect("ip")), "{public}");
        }
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::7f00:1",
        ] {
            assert!(!is_public(private.parse().expect("ip")), "{private}");
        }
    }

    #[test]
    fn urls_with_addresses_are_checked() {
        let policy = AddressPolicy::allowing(["127.0.0.1:5001", "[::1]:5000", "Mirror.local:80"]);
        let ok = |url: &str| policy.check_url(&url.parse().expect("url")).is_ok();
        assert!(ok("http://127.0.0.1:5001/v2/"));
        assert!(ok("http://127.0.0.1:9999/v2/"), "the host is listed, whatever the port");
        assert!(ok("http://[::1]:5000/v2/"));
        assert!(ok("https://registry.example.com/v2/"), "names are checked when resolved");
        assert!(!ok("http://10.0.0.1/v2/"));
        assert!(!ok("http://169.254.169.254/latest/meta-data"));
        assert!(!ok("http://[fd00::2]/v2/"));
    }

    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_refused_unless_listed() {
        let refused = AddressPolicy::default().resolve("localhost".parse().expect("name")).await;
        assert!(refused.is_err());
        let policy = AddressPolicy::allowing(["localhost:5000"]);
        let allowed = policy.resolve("localhost".parse().expect("name")).await;
        assert!(allowed.expect("resolves").next().is_some());
    }
}
