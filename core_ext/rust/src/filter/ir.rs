//! The compiled form of a filter: fields, typed terms and the boolean tree over them.

/// What a field holds, which decides its operators, values and storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Case-sensitive text: equality and `*` wildcards.
    String,
    /// The device status enum, stored as its lower-case name.
    Status,
    /// A double (`uptime_seconds` is a bigint compared as a double).
    Number,
    /// A timestamp, compared as Unix seconds.
    Timestamp,
    /// `metadata.<key>`: text, a missing key is NULL.
    Metadata,
    /// `tags`: true when any tag matches.
    Tags,
}

/// A filterable field and where it lives.
#[derive(Debug)]
pub struct Field {
    /// The name used in expressions and records.
    pub name: &'static str,
    pub kind: Kind,
    /// The `devices` column (only these names ever reach SQL text).
    pub column: &'static str,
    /// Whether the column may be NULL (the SQL then guards with `IS NOT NULL`).
    pub nullable: bool,
    /// Index among the snapshot's string columns (String, Status) or number columns
    /// (Number, Timestamp).
    pub slot: usize,
}

const fn field(
    name: &'static str,
    kind: Kind,
    column: &'static str,
    nullable: bool,
    slot: usize,
) -> Field {
    Field {
        name,
        kind,
        column,
        nullable,
        slot,
    }
}

/// Every named field, in the order of the reference's table.
pub static FIELDS: [Field; 15] = [
    field("id", Kind::String, "device_id", false, 0),
    field("name", Kind::String, "name", false, 1),
    field("type", Kind::String, "device_type", false, 2),
    field("version", Kind::String, "version", false, 3),
    field("agent_version", Kind::String, "agent_version", false, 4),
    field("fleet", Kind::String, "fleet", false, 5),
    field("status", Kind::Status, "status", false, 6),
    field("cpu_usage", Kind::Number, "cpu_usage", true, 0),
    field("memory_usage", Kind::Number, "memory_usage", true, 1),
    field("disk_usage", Kind::Number, "disk_usage", true, 2),
    field("uptime_seconds", Kind::Number, "uptime_seconds", true, 3),
    field("last_seen", Kind::Timestamp, "last_seen", true, 4),
    field("registered_at", Kind::Timestamp, "registered_at", false, 5),
    field("updated_at", Kind::Timestamp, "updated_at", false, 6),
    field("tags", Kind::Tags, "tags", false, 0),
];

/// `metadata.<key>`.
pub static METADATA: Field = field("metadata", Kind::Metadata, "metadata", true, 0);

/// Number of dictionary-encoded string columns in a snapshot (String and Status fields).
pub const STRING_SLOTS: usize = 7;
/// Number of `f64` columns in a snapshot (Number and Timestamp fields).
pub const NUMBER_SLOTS: usize = 7;

/// The field called `name`, if any (not `metadata.<key>`).
pub fn lookup(name: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.name == name)
}

/// The string-column field with this name (for snapshot construction).
pub fn string_column(name: &str) -> Option<&'static Field> {
    lookup(name).filter(|f| matches!(f.kind, Kind::String | Kind::Status))
}

/// The number-column field with this name (for snapshot construction).
pub fn number_column(name: &str) -> Option<&'static Field> {
    lookup(name).filter(|f| matches!(f.kind, Kind::Number | Kind::Timestamp))
}

/// The status names, as stored.
pub const STATUSES: [&str; 7] = [
    "unknown",
    "online",
    "offline",
    "maintenance",
    "updating",
    "error",
    "offboarded",
];

/// A wildcard match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Prefix(String),
    Suffix(String),
    Contains(String),
}

impl Pattern {
    pub fn test(&self, value: &str) -> bool {
        match self {
            Self::Prefix(p) => value.starts_with(p.as_str()),
            Self::Suffix(p) => value.ends_with(p.as_str()),
            Self::Contains(p) => value.contains(p.as_str()),
        }
    }

    /// The LIKE pattern, with `\`, `%` and `_` escaped (PostgreSQL's default escape).
    pub fn like(&self) -> String {
        let (text, lead, trail) = match self {
            Self::Prefix(p) => (p, false, true),
            Self::Suffix(p) => (p, true, false),
            Self::Contains(p) => (p, true, true),
        };
        let mut out = String::with_capacity(text.len() + 4);
        if lead {
            out.push('%');
        }
        for c in text.chars() {
            if matches!(c, '\\' | '%' | '_') {
                out.push('\\');
            }
            out.push(c);
        }
        if trail {
            out.push('%');
        }
        out
    }
}

/// A String, Status, Metadata or Tags term: true when the value equals one of `exact` or
/// matches one of `patterns` (for tags: when any tag does). NULL never matches.
#[derive(Debug)]
pub struct StringTerm {
    pub field: &'static Field,
    /// The metadata key (Metadata only).
    pub key: Option<String>,
    pub exact: Vec<String>,
    pub patterns: Vec<Pattern>,
}

impl StringTerm {
    pub fn test(&self, value: &str) -> bool {
        self.exact.iter().any(|e| e == value) || self.patterns.iter().any(|p| p.test(value))
    }
}

/// A comparison operator (`:` is equality).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Gt,
    Lt,
    Ge,
    Le,
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Eq => ":",
            Self::Gt => ">",
            Self::Lt => "<",
            Self::Ge => ">=",
            Self::Le => "<=",
        }
    }

    pub fn sql(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Gt => ">",
            Self::Lt => "<",
            Self::Ge => ">=",
            Self::Le => "<=",
        }
    }

    /// IEEE comparison: false whenever either side is NaN.
    #[inline(always)]
    pub fn apply(self, a: f64, b: f64) -> bool {
        match self {
            Self::Eq => a == b,
            Self::Gt => a > b,
            Self::Lt => a < b,
            Self::Ge => a >= b,
            Self::Le => a <= b,
        }
    }
}

/// A Number or Timestamp term: true when the (non-NULL) value compares true with any of
/// `values`. Timestamps keep their exact microseconds for SQL.
#[derive(Debug)]
pub struct CompareTerm {
    pub field: &'static Field,
    pub op: Op,
    pub values: Vec<f64>,
    pub micros: Option<Vec<i64>>,
}

impl CompareTerm {
    pub fn test(&self, value: f64) -> bool {
        self.values.iter().any(|&v| self.op.apply(value, v))
    }
}

/// The boolean tree. Two-valued: a term over NULL is false and `Not` is plain negation.
#[derive(Debug)]
pub enum Node {
    All,
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
    Str(StringTerm),
    Cmp(CompareTerm),
}
