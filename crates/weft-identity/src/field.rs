//! The standard identity fields a source's columns are mapped to.

use std::fmt;
use std::str::FromStr;

/// One standard identity field. A source maps its columns to these; anything
/// else it maps is kept as a free-form extra.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    FirstName,
    LastName,
    FullName,
    Email,
    Phone,
    Dob,
    StreetNumber,
    Address,
    City,
    Postcode,
    State,
    Country,
    NationalId,
    UserId,
}

impl Field {
    pub const ALL: [Field; 14] = [
        Field::FirstName,
        Field::LastName,
        Field::FullName,
        Field::Email,
        Field::Phone,
        Field::Dob,
        Field::StreetNumber,
        Field::Address,
        Field::City,
        Field::Postcode,
        Field::State,
        Field::Country,
        Field::NationalId,
        Field::UserId,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::FirstName => "first_name",
            Field::LastName => "last_name",
            Field::FullName => "full_name",
            Field::Email => "email",
            Field::Phone => "phone",
            Field::Dob => "dob",
            Field::StreetNumber => "street_number",
            Field::Address => "address",
            Field::City => "city",
            Field::Postcode => "postcode",
            Field::State => "state",
            Field::Country => "country",
            Field::NationalId => "national_id",
            Field::UserId => "user_id",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Field {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Field::ALL
            .into_iter()
            .find(|field| field.name() == text)
            .ok_or_else(|| {
                format!(
                    "unknown identity field {text:?} (one of {})",
                    Field::ALL.map(Field::name).join(", ")
                )
            })
    }
}
