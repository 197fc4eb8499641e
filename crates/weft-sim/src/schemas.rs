//! The simulated shop's own event and entity schemas, by Iglu URI.

pub const WEB_PAGE: &str = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0";
pub const PRODUCT: &str = "iglu:com.acme/product_entity/jsonschema/1-0-1";
pub const PRODUCT_VIEW: &str = "iglu:com.acme/product_view/jsonschema/1-0-0";
pub const ADD_TO_CART: &str = "iglu:com.acme/add_to_cart/jsonschema/1-0-0";
pub const CHECKOUT: &str = "iglu:com.acme/checkout/jsonschema/1-0-0";
pub const LOGIN: &str = "iglu:com.acme/login/jsonschema/1-0-0";
pub const SIGN_UP: &str = "iglu:com.acme/sign_up/jsonschema/1-0-0";
pub const NEWSLETTER_SIGNUP: &str = "iglu:com.acme/newsletter_signup/jsonschema/1-0-0";
pub const USER: &str = "iglu:com.acme/user/jsonschema/1-0-0";

/// Every schema the shop's events use that weft does not ship, with its text;
/// install them in a registry (the quickstart and `weft simulate` put them in
/// `data_dir/iglu`) so the events validate.
pub const SCHEMAS: &[(&str, &str)] = &[
    (
        PRODUCT,
        include_str!("../iglu/com.acme/product_entity/jsonschema/1-0-1"),
    ),
    (
        PRODUCT_VIEW,
        include_str!("../iglu/com.acme/product_view/jsonschema/1-0-0"),
    ),
    (
        ADD_TO_CART,
        include_str!("../iglu/com.acme/add_to_cart/jsonschema/1-0-0"),
    ),
    (
        CHECKOUT,
        include_str!("../iglu/com.acme/checkout/jsonschema/1-0-0"),
    ),
    (
        LOGIN,
        include_str!("../iglu/com.acme/login/jsonschema/1-0-0"),
    ),
    (
        SIGN_UP,
        include_str!("../iglu/com.acme/sign_up/jsonschema/1-0-0"),
    ),
    (
        NEWSLETTER_SIGNUP,
        include_str!("../iglu/com.acme/newsletter_signup/jsonschema/1-0-0"),
    ),
    (USER, include_str!("../iglu/com.acme/user/jsonschema/1-0-0")),
    (
        "iglu:com.acme/product_entity/jsonschema/1-0-0",
        include_str!("../iglu/com.acme/product_entity/jsonschema/1-0-0"),
    ),
];
