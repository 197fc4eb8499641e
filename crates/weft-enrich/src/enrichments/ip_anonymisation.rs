//! IP anonymisation: the last octets (IPv4) or segments (IPv6) of
//! `user_ipaddress` replaced by `x`, as Snowplow writes them
//! (`81.2.69.x`, `2001:db8:85a3:0:x:x:x:x`).

use std::net::IpAddr;

use weft_core::Event;
use weft_core::config::IpAnonymisationConfig;

use super::{Enrichment, EnrichmentConfigError};

pub struct IpAnonymisation {
    ipv4_octets: usize,
    ipv6_segments: usize,
}

impl IpAnonymisation {
    pub fn new(config: &IpAnonymisationConfig) -> Result<Self, EnrichmentConfigError> {
        if !(1..=4).contains(&config.ipv4_octets) {
            return Err(EnrichmentConfigError::new(
                "ip_anonymisation.ipv4_octets",
                format!("{} is not 1 to 4", config.ipv4_octets),
            ));
        }
        if !(1..=8).contains(&config.ipv6_segments) {
            return Err(EnrichmentConfigError::new(
                "ip_anonymisation.ipv6_segments",
                format!("{} is not 1 to 8", config.ipv6_segments),
            ));
        }
        Ok(Self {
            ipv4_octets: usize::from(config.ipv4_octets),
            ipv6_segments: usize::from(config.ipv6_segments),
        })
    }

    pub fn anonymise(&self, ip: &str) -> Option<String> {
        let parts: Vec<String> = match ip.trim().parse::<IpAddr>().ok()? {
            IpAddr::V4(v4) => {
                let octets = v4.octets();
                let keep = 4 - self.ipv4_octets;
                let mut parts: Vec<String> = octets[..keep].iter().map(u8::to_string).collect();
                parts.resize(4, "x".to_owned());
                return Some(parts.join("."));
            }
            IpAddr::V6(v6) => {
                if let Some(v4) = v6.to_ipv4_mapped() {
                    return self.anonymise(&v4.to_string());
                }
                let keep = 8 - self.ipv6_segments;
                v6.segments()[..keep]
                    .iter()
                    .map(|s| format!("{s:x}"))
                    .collect()
            }
        };
        let mut parts = parts;
        parts.resize(8, "x".to_owned());
        Some(parts.join(":"))
    }
}

impl Enrichment for IpAnonymisation {
    fn name(&self) -> &str {
        "ip_anonymisation"
    }

    fn enrich(&self, event: &mut Event) -> Result<(), String> {
        // what is not an address cannot be masked: it is not kept either
        event.user_ipaddress = event
            .user_ipaddress
            .as_deref()
            .and_then(|ip| self.anonymise(ip));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(ipv4_octets: u8, ipv6_segments: u8) -> IpAnonymisation {
        IpAnonymisation::new(&IpAnonymisationConfig {
            enabled: true,
            ipv4_octets,
            ipv6_segments,
        })
        .unwrap()
    }

    #[test]
    fn ipv4_octets_are_masked_from_the_end() {
        assert_eq!(with(1, 4).anonymise("81.2.69.160").unwrap(), "81.2.69.x");
        assert_eq!(with(2, 4).anonymise("81.2.69.160").unwrap(), "81.2.x.x");
        assert_eq!(with(4, 4).anonymise("81.2.69.160").unwrap(), "x.x.x.x");
    }

    #[test]
    fn ipv6_segments_are_masked_from_the_end() {
        let ip = "2001:0db8:85a3:0000:0000:8a2e:0370:7334";
        assert_eq!(with(1, 4).anonymise(ip).unwrap(), "2001:db8:85a3:0:x:x:x:x");
        assert_eq!(
            with(1, 1).anonymise(ip).unwrap(),
            "2001:db8:85a3:0:0:8a2e:370:x"
        );
        assert_eq!(with(1, 8).anonymise("::1").unwrap(), "x:x:x:x:x:x:x:x");
        // an IPv4 address carried in IPv6 is masked as IPv4
        assert_eq!(
            with(1, 4).anonymise("::ffff:81.2.69.160").unwrap(),
            "81.2.69.x"
        );
    }

    #[test]
    fn what_is_not_an_address_is_dropped_and_bad_settings_refused() {
        let mut event = Event {
            user_ipaddress: Some("not-an-ip".into()),
            ..Event::default()
        };
        with(1, 4).enrich(&mut event).unwrap();
        assert_eq!(event.user_ipaddress, None);
        for (octets, segments, key) in [
            (0, 4, "ipv4_octets"),
            (5, 4, "ipv4_octets"),
            (1, 9, "ipv6_segments"),
        ] {
            let error = IpAnonymisation::new(&IpAnonymisationConfig {
                enabled: true,
                ipv4_octets: octets,
                ipv6_segments: segments,
            })
            .err()
            .unwrap();
            assert!(error.to_string().contains(key), "{error}");
        }
    }
}
