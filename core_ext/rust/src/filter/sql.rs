//! SQL emitter: a parameterised WHERE-clause fragment over the `devices` table.
//!
//! Only whitelisted column names (from the field table), operators and casts are written
//! into the SQL text; every value (metadata keys included) is a bind parameter. The
//! fragment is two-valued: nullable columns are guarded with `IS NOT NULL AND ...`
//! (`NULL AND false` is false, and the comparison stays indexable), metadata lookups with
//! `COALESCE(..., false)`. Mirrors `_SqlWriter` in the reference.

use super::ir::{CompareTerm, Kind, Node, StringTerm};

/// A bind value.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(String),
    TextArray(Vec<String>),
    Float(f64),
    /// Unix microseconds, bound as a UTC datetime.
    Timestamp(i64),
}

/// Render `node` with placeholders numbered from `first_param`.
pub fn render(node: &Node, first_param: usize) -> (String, Vec<Param>) {
    let mut w = Writer {
        sql: String::new(),
        params: Vec::new(),
        first: first_param,
    };
    w.node(node);
    (w.sql, w.params)
}

struct Writer {
    sql: String,
    params: Vec<Param>,
    first: usize,
}

impl Writer {
    fn bind(&mut self, value: Param, cast: &str) -> String {
        self.params.push(value);
        format!("${}::{cast}", self.first + self.params.len() - 1)
    }

    fn node(&mut self, node: &Node) {
        match node {
            Node::All => self.sql.push_str("TRUE"),
            Node::Not(child) => {
                self.sql.push_str("NOT (");
                self.node(child);
                self.sql.push(')');
            }
            Node::And(children) => self.join(children, " AND "),
            Node::Or(children) => self.join(children, " OR "),
            Node::Str(term) => {
                let s = self.string_term(term);
                self.sql.push_str(&s);
            }
            Node::Cmp(term) => {
                let s = self.compare_term(term);
                self.sql.push_str(&s);
            }
        }
    }

    fn join(&mut self, children: &[Node], sep: &str) {
        self.sql.push('(');
        for (k, child) in children.iter().enumerate() {
            if k > 0 {
                self.sql.push_str(sep);
            }
            self.node(child);
        }
        self.sql.push(')');
    }

    fn string_term(&mut self, term: &StringTerm) -> String {
        let mut parts = Vec::new();
        if term.field.kind == Kind::Tags {
            if !term.exact.is_empty() {
                let p = self.bind(Param::TextArray(term.exact.clone()), "text[]");
                parts.push(format!("tags && {p}"));
            }
            for pattern in &term.patterns {
                let p = self.bind(Param::Text(pattern.like()), "text");
                parts.push(format!(
                    "EXISTS (SELECT 1 FROM unnest(tags) AS _tag(value) WHERE _tag.value LIKE {p})"
                ));
            }
            return join_or(parts);
        }
        let column = if term.field.kind == Kind::Metadata {
            let key = term.key.clone().unwrap_or_default();
            format!("(metadata->>{})", self.bind(Param::Text(key), "text"))
        } else {
            term.field.column.to_owned()
        };
        match term.exact.as_slice() {
            [] => {}
            [one] => {
                let p = self.bind(Param::Text(one.clone()), "text");
                parts.push(format!("{column} = {p}"));
            }
            many => {
                let p = self.bind(Param::TextArray(many.to_vec()), "text[]");
                parts.push(format!("{column} = ANY({p})"));
            }
        }
        for pattern in &term.patterns {
            let p = self.bind(Param::Text(pattern.like()), "text");
            parts.push(format!("{column} LIKE {p}"));
        }
        if term.field.kind == Kind::Metadata {
            return format!("COALESCE({}, false)", parts.join(" OR "));
        }
        join_or(parts)
    }

    fn compare_term(&mut self, term: &CompareTerm) -> String {
        let column = term.field.column;
        let operand = if column == "uptime_seconds" {
            "uptime_seconds::float8"
        } else {
            column
        };
        let op = term.op.sql();
        let mut parts = Vec::new();
        match &term.micros {
            Some(micros) => {
                for &m in micros {
                    let p = self.bind(Param::Timestamp(m), "timestamptz");
                    parts.push(format!("{operand} {op} {p}"));
                }
            }
            None => {
                for &v in &term.values {
                    let p = self.bind(Param::Float(v), "float8");
                    parts.push(format!("{operand} {op} {p}"));
                }
            }
        }
        let predicate = join_or(parts);
        if term.field.nullable {
            return format!("({column} IS NOT NULL AND {predicate})");
        }
        predicate
    }
}

fn join_or(mut parts: Vec<String>) -> String {
    if parts.len() == 1 {
        parts.swap_remove(0)
    } else {
        format!("({})", parts.join(" OR "))
    }
}
