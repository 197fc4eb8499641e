//! The canonical (enriched) event: Snowplow's 131 atomic fields, in Snowplow's
//! order and naming, so analysts and tools that know Snowplow feel at home.
//! `ATOMIC_FIELDS` lists them with their kinds, from which table schemas are made.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What kind of value an atomic field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Integer,
    Float,
    Boolean,
    /// Milliseconds since the Unix epoch, UTC.
    Timestamp,
    /// A self-describing JSON (event) or an array of them (contexts).
    Json,
}

/// A borrowed field value, tagged with its kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldRef<'a> {
    Text(&'a Option<String>),
    Integer(&'a Option<i64>),
    Float(&'a Option<f64>),
    Boolean(&'a Option<bool>),
    Timestamp(&'a Option<i64>),
    Json(&'a Option<Value>),
}

macro_rules! atomic_event {
    ($($name:ident: $kind:ident),+ $(,)?) => {
        /// One canonical event. Every field is optional, as in Snowplow's enriched format.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub struct Event {
            $(pub $name: Option<atomic_event!(@type $kind)>,)+
        }

        /// Every atomic field in order, with its kind.
        pub const ATOMIC_FIELDS: &[(&str, FieldKind)] = &[$((stringify!($name), FieldKind::$kind)),+];

        impl Event {
            /// Visits every field's value, in the order of `ATOMIC_FIELDS`.
            pub fn for_each_field<'a>(&'a self, mut visit: impl FnMut(FieldRef<'a>)) {
                $(visit(FieldRef::$kind(&self.$name));)+
            }
        }
    };
    (@type Text) => { String };
    (@type Integer) => { i64 };
    (@type Float) => { f64 };
    (@type Boolean) => { bool };
    (@type Timestamp) => { i64 };
    (@type Json) => { Value };
}

atomic_event! {
    app_id: Text,
    platform: Text,
    etl_tstamp: Timestamp,
    collector_tstamp: Timestamp,
    dvce_created_tstamp: Timestamp,
    event: Text,
    event_id: Text,
    txn_id: Integer,
    name_tracker: Text,
    v_tracker: Text,
    v_collector: Text,
    v_etl: Text,
    user_id: Text,
    user_ipaddress: Text,
    user_fingerprint: Text,
    domain_userid: Text,
    domain_sessionidx: Integer,
    network_userid: Text,
    geo_country: Text,
    geo_region: Text,
    geo_city: Text,
    geo_zipcode: Text,
    geo_latitude: Float,
    geo_longitude: Float,
    geo_region_name: Text,
    ip_isp: Text,
    ip_organization: Text,
    ip_domain: Text,
    ip_netspeed: Text,
    page_url: Text,
    page_title: Text,
    page_referrer: Text,
    page_urlscheme: Text,
    page_urlhost: Text,
    page_urlport: Integer,
    page_urlpath: Text,
    page_urlquery: Text,
    page_urlfragment: Text,
    refr_urlscheme: Text,
    refr_urlhost: Text,
    refr_urlport: Integer,
    refr_urlpath: Text,
    refr_urlquery: Text,
    refr_urlfragment: Text,
    refr_medium: Text,
    refr_source: Text,
    refr_term: Text,
    mkt_medium: Text,
    mkt_source: Text,
    mkt_term: Text,
    mkt_content: Text,
    mkt_campaign: Text,
    contexts: Json,
    se_category: Text,
    se_action: Text,
    se_label: Text,
    se_property: Text,
    se_value: Float,
    unstruct_event: Json,
    tr_orderid: Text,
    tr_affiliation: Text,
    tr_total: Float,
    tr_tax: Float,
    tr_shipping: Float,
    tr_city: Text,
    tr_state: Text,
    tr_country: Text,
    ti_orderid: Text,
    ti_sku: Text,
    ti_name: Text,
    ti_category: Text,
    ti_price: Float,
    ti_quantity: Integer,
    pp_xoffset_min: Integer,
    pp_xoffset_max: Integer,
    pp_yoffset_min: Integer,
    pp_yoffset_max: Integer,
    useragent: Text,
    br_name: Text,
    br_family: Text,
    br_version: Text,
    br_type: Text,
    br_renderengine: Text,
    br_lang: Text,
    br_features_pdf: Boolean,
    br_features_flash: Boolean,
    br_features_java: Boolean,
    br_features_director: Boolean,
    br_features_quicktime: Boolean,
    br_features_realplayer: Boolean,
    br_features_windowsmedia: Boolean,
    br_features_gears: Boolean,
    br_features_silverlight: Boolean,
    br_cookies: Boolean,
    br_colordepth: Text,
    br_viewwidth: Integer,
    br_viewheight: Integer,
    os_name: Text,
    os_family: Text,
    os_manufacturer: Text,
    os_timezone: Text,
    dvce_type: Text,
    dvce_ismobile: Boolean,
    dvce_screenwidth: Integer,
    dvce_screenheight: Integer,
    doc_charset: Text,
    doc_width: Integer,
    doc_height: Integer,
    tr_currency: Text,
    tr_total_base: Float,
    tr_tax_base: Float,
    tr_shipping_base: Float,
    ti_currency: Text,
    ti_price_base: Float,
    base_currency: Text,
    geo_timezone: Text,
    mkt_clickid: Text,
    mkt_network: Text,
    etl_tags: Text,
    dvce_sent_tstamp: Timestamp,
    refr_domain_userid: Text,
    refr_device_tstamp: Timestamp,
    derived_contexts: Json,
    domain_sessionid: Text,
    derived_tstamp: Timestamp,
    event_vendor: Text,
    event_name: Text,
    event_format: Text,
    event_version: Text,
    event_fingerprint: Text,
    true_tstamp: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_snowplows_131_enriched_columns_in_order() {
        let expected = include_str!("../testdata/enriched_tsv_columns.txt");
        let expected: Vec<&str> = expected.lines().filter(|l| !l.is_empty()).collect();
        let ours: Vec<&str> = ATOMIC_FIELDS.iter().map(|(name, _)| *name).collect();
        assert_eq!(ours, expected);
        assert_eq!(ours.len(), 131);
    }

    #[test]
    fn visiting_follows_the_field_list() {
        let event = Event {
            app_id: Some("shop".into()),
            se_value: Some(1.5),
            true_tstamp: Some(7),
            ..Event::default()
        };
        let mut visited = Vec::new();
        event.for_each_field(|value| visited.push(value));
        assert_eq!(visited.len(), ATOMIC_FIELDS.len());
        let index = |name: &str| ATOMIC_FIELDS.iter().position(|(n, _)| *n == name).unwrap();
        assert_eq!(
            visited[index("app_id")],
            FieldRef::Text(&Some("shop".into()))
        );
        assert_eq!(visited[index("se_value")], FieldRef::Float(&Some(1.5)));
        assert_eq!(visited[index("true_tstamp")], FieldRef::Timestamp(&Some(7)));
        for (value, (_, kind)) in visited.iter().zip(ATOMIC_FIELDS) {
            let matches = matches!(
                (value, kind),
                (FieldRef::Text(_), FieldKind::Text)
                    | (FieldRef::Integer(_), FieldKind::Integer)
                    | (FieldRef::Float(_), FieldKind::Float)
                    | (FieldRef::Boolean(_), FieldKind::Boolean)
                    | (FieldRef::Timestamp(_), FieldKind::Timestamp)
                    | (FieldRef::Json(_), FieldKind::Json)
            );
            assert!(matches);
        }
    }
}
