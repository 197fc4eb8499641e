//! IP lookups: country, region, city, postcode, coordinates and time zone of
//! `user_ipaddress` from a MaxMind-format database (GeoIP2 or GeoLite2 City
//! or Country), as Snowplow's IP lookups enrichment fills the `geo_*` fields.
//! Runs before IP anonymisation, which masks the address afterwards.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::{Reader, geoip2};
use weft_core::Event;

use super::Enrichment;

pub struct IpLookups {
    reader: Reader<Vec<u8>>,
}

impl IpLookups {
    /// The database at `path`, or why it cannot be used.
    pub fn open(path: &Path) -> Result<Self, String> {
        Reader::open_readfile(path)
            .map(|reader| Self { reader })
            .map_err(|error| {
                format!(
                    "cannot read the MaxMind database {}: {error}",
                    path.display()
                )
            })
    }
}

impl Enrichment for IpLookups {
    fn name(&self) -> &str {
        "ip_lookups"
    }

    fn enrich(&self, event: &mut Event) -> Result<(), String> {
        let Some(ip) = event
            .user_ipaddress
            .as_deref()
            .and_then(|ip| ip.trim().parse::<IpAddr>().ok())
        else {
            return Ok(());
        };
        let found: Option<geoip2::City> = match self.reader.lookup(ip) {
            Ok(found) => found,
            // a private or reserved address is simply not in the database
            Err(maxminddb::MaxMindDbError::InvalidNetwork(_)) => None,
            Err(error) => return Err(format!("lookup of {ip} failed: {error}")),
        };
        let Some(city) = found else {
            return Ok(());
        };
        let english = |names: Option<&std::collections::BTreeMap<&str, &str>>| {
            names
                .and_then(|names| names.get("en"))
                .map(|name| (*name).to_owned())
        };
        event.geo_country = city
            .country
            .as_ref()
            .and_then(|c| c.iso_code)
            .map(str::to_owned);
        if let Some(region) = city.subdivisions.as_ref().and_then(|s| s.first()) {
            event.geo_region = region.iso_code.map(str::to_owned);
            event.geo_region_name = english(region.names.as_ref());
        }
        event.geo_city = english(city.city.as_ref().and_then(|c| c.names.as_ref()));
        event.geo_zipcode = city.postal.as_ref().and_then(|p| p.code).map(str::to_owned);
        if let Some(location) = &city.location {
            event.geo_latitude = location.latitude;
            event.geo_longitude = location.longitude;
            event.geo_timezone = location.time_zone.map(str::to_owned);
        }
        Ok(())
    }
}
