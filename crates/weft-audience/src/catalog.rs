//! What a spec may name: the columns of the tables an audience reads, with
//! the kind of value each holds, taken from the tables themselves.

use std::collections::BTreeMap;

use deltalake::arrow::datatypes::{DataType, Schema};

use crate::spec::Source;

/// The kind of value in a column, as far as conditions care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Integer,
    Float,
    Bool,
    Date,
    Timestamp,
    /// A list of text (emails, categories bought).
    TextList,
    /// Self-describing JSON text whose keys are read with `COLUMN.KEY`.
    Json,
    /// Anything else: only `is_set` / `not_set`.
    Other,
}

impl Kind {
    pub fn of(data_type: &DataType) -> Kind {
        match data_type {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Kind::Text,
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => Kind::Integer,
            DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(..) => Kind::Float,
            DataType::Boolean => Kind::Bool,
            DataType::Date32 | DataType::Date64 => Kind::Date,
            DataType::Timestamp(..) => Kind::Timestamp,
            DataType::List(item) | DataType::LargeList(item)
                if matches!(
                    item.data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) =>
            {
                Kind::TextList
            }
            _ => Kind::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Integer => "integer",
            Kind::Float => "number",
            Kind::Bool => "true/false",
            Kind::Date => "date",
            Kind::Timestamp => "timestamp",
            Kind::TextList => "list of text",
            Kind::Json => "self-describing JSON",
            Kind::Other => "other",
        }
    }

    pub fn is_number(self) -> bool {
        matches!(self, Kind::Integer | Kind::Float)
    }
}

/// The columns of one table, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Columns(pub BTreeMap<String, Kind>);

impl Columns {
    pub fn from_schema(schema: &Schema) -> Self {
        Self(
            schema
                .fields()
                .iter()
                .map(|field| {
                    let name = field.name();
                    let kind =
                        if name.starts_with("unstruct_event_") || name.starts_with("contexts_") {
                            Kind::Json
                        } else {
                            Kind::of(field.data_type())
                        };
                    (name.clone(), kind)
                })
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<Kind> {
        self.0.get(name).copied()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// Every table an audience can read. A table the lake does not have yet is
/// empty here, so naming its columns is an error that says so.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    pub customers: Columns,
    pub scores: Columns,
    pub events: Columns,
    pub conversions: Columns,
    pub sessions: Columns,
    pub page_views: Columns,
}

impl Catalog {
    pub fn source(&self, source: Source) -> &Columns {
        match source {
            Source::Events => &self.events,
            Source::Conversions => &self.conversions,
            Source::Sessions => &self.sessions,
            Source::PageViews => &self.page_views,
        }
    }

    /// A score's column: `overall` is `score`, a category `score_<category>`,
    /// and any column of `ml.scores` by its own name.
    pub fn score_column(&self, name: &str) -> Option<(String, Kind)> {
        let column = match name {
            "overall" => "score".to_owned(),
            _ if self.scores.get(name).is_some() => name.to_owned(),
            _ => format!("score_{name}"),
        };
        self.scores.get(&column).map(|kind| (column, kind))
    }

    /// The score names a spec can use, for error messages.
    pub fn score_names(&self) -> Vec<String> {
        let mut names = vec!["overall".to_owned()];
        names.extend(
            self.scores
                .names()
                .filter_map(|c| c.strip_prefix("score_"))
                .map(str::to_owned),
        );
        names
    }
}
