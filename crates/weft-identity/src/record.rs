//! Records as sources give them, and as the matcher compares them.

use chrono::NaiveDate;

use crate::field::Field;
use crate::normalise::{self, Address};

/// A record as read: its source, its id in that source, and the values of the
/// identity fields its columns were mapped to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawRecord {
    pub source: String,
    pub id: String,
    pub values: Vec<(Field, String)>,
}

impl RawRecord {
    pub fn get(&self, field: Field) -> &str {
        self.values
            .iter()
            .find(|(f, v)| *f == field && !v.trim().is_empty())
            .map_or("", |(_, v)| v.as_str())
    }
}

/// How values are read where they are ambiguous.
#[derive(Debug, Clone)]
pub struct NormaliseOptions {
    /// Phones without a country code are read in the record's country, else here.
    pub default_region: String,
    /// 03/04/1990 is the 3rd of April.
    pub day_first: bool,
}

impl Default for NormaliseOptions {
    fn default() -> Self {
        Self {
            default_region: "GB".to_owned(),
            day_first: true,
        }
    }
}

/// A record normalised for comparison; empty strings are missing values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    /// Index into the linker's sources.
    pub source: u32,
    pub id: String,
    pub first: String,
    pub last: String,
    pub email: String,
    pub phone: String,
    pub dob: Option<NaiveDate>,
    pub address: Address,
    pub city: String,
    pub postcode: String,
    pub state: String,
    pub country: String,
    pub national_id: String,
    pub user_id: String,
}

impl Record {
    pub fn normalise(raw: &RawRecord, source: u32, options: &NormaliseOptions) -> Self {
        let mut record = Self::normalise_except_phone(raw, source, options);
        let key = normalise::phone_key(raw.get(Field::Phone));
        record.phone =
            normalise::phone(&key, &Self::phone_region(raw, options)).unwrap_or_default();
        record
    }

    /// The country a record's phone is read in: its own, else the default.
    pub fn phone_region(raw: &RawRecord, options: &NormaliseOptions) -> String {
        let country = normalise::country(raw.get(Field::Country));
        if country.len() == 2 {
            country
        } else {
            options.default_region.clone()
        }
    }

    /// Every field but the phone, which a caller parses (see `link`).
    pub fn normalise_except_phone(
        raw: &RawRecord,
        source: u32,
        options: &NormaliseOptions,
    ) -> Self {
        let (mut first, mut last) = (
            normalise::name(raw.get(Field::FirstName)),
            normalise::name(raw.get(Field::LastName)),
        );
        if first.is_empty() && last.is_empty() {
            (first, last) = normalise::split_full_name(raw.get(Field::FullName));
        }
        let country = normalise::country(raw.get(Field::Country));
        let mut address = normalise::address(raw.get(Field::Address));
        let number = raw.get(Field::StreetNumber).trim();
        if !number.is_empty() {
            address.number = number.to_ascii_lowercase();
        }
        let mut city = normalise::words(raw.get(Field::City));
        if city.is_empty() {
            city = std::mem::take(&mut address.locality);
        }
        Self {
            source,
            id: raw.id.clone(),
            email: normalise::email(raw.get(Field::Email)).unwrap_or_default(),
            phone: String::new(),
            dob: normalise::date(raw.get(Field::Dob), options.day_first),
            postcode: normalise::postcode(raw.get(Field::Postcode)),
            state: normalise::words(raw.get(Field::State)),
            national_id: normalise::identifier(raw.get(Field::NationalId)),
            user_id: raw.get(Field::UserId).trim().to_owned(),
            first,
            last,
            address,
            city,
            country,
        }
    }

    /// The email's part before the `@`.
    pub fn email_local(&self) -> &str {
        self.email.split('@').next().unwrap_or("")
    }
}
