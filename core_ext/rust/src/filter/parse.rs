//! Parser and typed compiler: expression text to a [`Node`] tree, or an error with its
//! character position. Mirrors `core_ext/reference/filter/parse.py` (`_Parser`) step for step:
//! the same checks in the same order give the same messages at the same positions.
//!
//! Recursion is bounded: every recursive step enters a `(` or `NOT`, and nesting is
//! limited to [`MAX_DEPTH`].

use super::ir::{lookup, CompareTerm, Kind, Node, Op, Pattern, StringTerm, METADATA, STATUSES};
use super::time::{self, TimeError};

pub const MAX_LENGTH: usize = 4096;
pub const MAX_DEPTH: usize = 32;
pub const MAX_TERMS: usize = 64;
pub const MAX_VALUES: usize = 100;
const MAX_METADATA_KEY: usize = 64;
const METADATA_PREFIX: &str = "metadata.";

pub const E_TOO_LONG: &str = "expression too long: at most 4096 characters";
pub const E_BAD_CHARACTER: &str = "invalid character: NUL and unpaired surrogates are not allowed";
const E_EXPECTED_TERM: &str = "expected a field name, '(' or NOT";
const E_EXPECTED_END: &str = "expected AND, OR or end of expression";
const E_EXPECTED_CLOSE: &str = "expected AND, OR or ')'";
const E_METADATA_KEY: &str = "metadata key must be 1 to 64 characters from A-Z a-z 0-9 _ . -";
const E_EXPECTED_VALUE: &str = "expected a value";
const E_UNTERMINATED: &str = "unterminated quoted value";
const E_ESCAPE: &str = "invalid escape in quoted value: use \\\", \\\\ or \\*";
const E_STAR: &str =
    "'*' is only allowed at the start or end of a value (inside quotes, \\* is a literal '*')";
const E_AFTER_VALUE: &str = "expected ',', ')', whitespace or end of expression after a value";
const E_STATUS: &str = "unknown status; expected one of unknown, online, offline, maintenance, \
                        updating, error, offboarded";
const E_DEPTH: &str = "nesting too deep: at most 32 levels of parentheses and NOT";
const E_TERMS: &str = "too many terms: at most 64";
const E_VALUES: &str = "too many values in one term: at most 100";

fn e_expected_colon(field: &str) -> String {
    format!("expected ':' after field name '{field}'")
}

fn e_unknown_field(field: &str) -> String {
    format!(
        "unknown field '{field}'; fields are id, name, type, version, agent_version, fleet, \
         status, cpu_usage, memory_usage, disk_usage, uptime_seconds, last_seen, \
         registered_at, updated_at, tags and metadata.<key>"
    )
}

fn e_operator(op: &str, field: &str) -> String {
    format!("operator '{op}' is not supported for field '{field}'; use ':' (equality, * wildcards)")
}

fn e_wildcard(field: &str) -> String {
    format!("wildcards are not supported for field '{field}'")
}

fn e_number(field: &str) -> String {
    format!("invalid number for field '{field}'")
}

fn e_number_range(field: &str) -> String {
    format!("number out of range for field '{field}'")
}

fn e_timestamp(field: &str) -> String {
    format!(
        "invalid timestamp for field '{field}': expected YYYY-MM-DD, RFC 3339 \
         (2024-01-01T12:00:00Z) or a relative time (-30s, -10m, -2h, -7d)"
    )
}

fn e_timestamp_range(field: &str) -> String {
    format!("timestamp out of range for field '{field}': years 1 to 9999")
}

/// An invalid expression: what was expected, and where (0-based character offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub position: usize,
}

fn err<T>(message: impl Into<String>, position: usize) -> Result<T, ParseError> {
    Err(ParseError {
        message: message.into(),
        position,
    })
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

fn is_bare_stop(c: char) -> bool {
    is_space(c) || matches!(c, '(' | ')' | ',' | '"')
}

/// Compile `expression` (already checked for length and characters) against `now`
/// (Unix microseconds, for relative times).
pub fn compile(expression: &[char], now: i64) -> Result<Node, ParseError> {
    let mut p = Parser {
        s: expression,
        i: 0,
        depth: 0,
        terms: 0,
        now,
    };
    p.skip_ws();
    if p.i == p.s.len() {
        return Ok(Node::All);
    }
    let node = p.parse_or()?;
    p.skip_ws();
    if p.i < p.s.len() {
        return err(E_EXPECTED_END, p.i);
    }
    Ok(node)
}

/// The position of the first NUL, if any (the caller has already refused surrogates).
pub fn bad_character(expression: &[char]) -> Option<usize> {
    expression.iter().position(|&c| c == '\0')
}

struct Parser<'a> {
    s: &'a [char],
    i: usize,
    depth: usize,
    terms: usize,
    now: i64,
}

struct Value {
    text: String,
    leading: bool,
    trailing: bool,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_space) {
            self.i += 1;
        }
    }

    fn word_len(&self) -> usize {
        self.s[self.i..].iter().take_while(|&&c| is_word(c)).count()
    }

    fn word_is(&self, keyword: &str) -> bool {
        let n = self.word_len();
        n == keyword.len()
            && self.s[self.i..self.i + n]
                .iter()
                .copied()
                .eq(keyword.chars())
    }

    fn enter(&mut self, position: usize) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(E_DEPTH, position);
        }
        Ok(())
    }

    fn parse_or(&mut self) -> Result<Node, ParseError> {
        let mut children = vec![self.parse_and()?];
        loop {
            self.skip_ws();
            if !self.word_is("OR") {
                break;
            }
            self.i += 2;
            children.push(self.parse_and()?);
        }
        Ok(if children.len() == 1 {
            children.swap_remove(0)
        } else {
            Node::Or(children)
        })
    }

    fn parse_and(&mut self) -> Result<Node, ParseError> {
        let mut children = vec![self.parse_unary()?];
        loop {
            self.skip_ws();
            if !self.word_is("AND") {
                break;
            }
            self.i += 3;
            children.push(self.parse_unary()?);
        }
        Ok(if children.len() == 1 {
            children.swap_remove(0)
        } else {
            Node::And(children)
        })
    }

    fn parse_unary(&mut self) -> Result<Node, ParseError> {
        self.skip_ws();
        if self.word_is("NOT") {
            self.enter(self.i)?;
            self.i += 3;
            let node = Node::Not(Box::new(self.parse_unary()?));
            self.depth -= 1;
            return Ok(node);
        }
        if self.peek() == Some('(') {
            self.enter(self.i)?;
            self.i += 1;
            let node = self.parse_or()?;
            self.skip_ws();
            if self.peek() != Some(')') {
                return err(E_EXPECTED_CLOSE, self.i);
            }
            self.i += 1;
            self.depth -= 1;
            return Ok(node);
        }
        self.parse_term()
    }

    fn parse_term(&mut self) -> Result<Node, ParseError> {
        let start = self.i;
        let len = self.word_len();
        let name: String = self.s[start..start + len].iter().collect();
        if name.is_empty() || name == "AND" || name == "OR" || name == "NOT" {
            return err(E_EXPECTED_TERM, start);
        }
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return err(E_TERMS, start);
        }
        self.i += len;
        if self.peek() != Some(':') {
            return err(e_expected_colon(&name), self.i);
        }
        let (field, key) = match lookup(&name) {
            Some(f) => (f, None),
            None => match name.strip_prefix(METADATA_PREFIX) {
                None => return err(e_unknown_field(&name), start),
                Some(key) => {
                    // Word characters are ASCII: bytes are characters.
                    if key.is_empty() || key.len() > MAX_METADATA_KEY {
                        return err(E_METADATA_KEY, start + METADATA_PREFIX.len());
                    }
                    (&METADATA, Some(key.to_owned()))
                }
            },
        };
        self.i += 1;
        let op_position = self.i;
        let op = match (self.peek(), self.s.get(self.i + 1).copied()) {
            (Some('>'), Some('=')) => Op::Ge,
            (Some('<'), Some('=')) => Op::Le,
            (Some('>'), _) => Op::Gt,
            (Some('<'), _) => Op::Lt,
            _ => Op::Eq,
        };
        if op != Op::Eq {
            self.i += op.symbol().len();
            if !matches!(field.kind, Kind::Number | Kind::Timestamp) {
                return err(e_operator(op.symbol(), &name), op_position);
            }
        }

        let mut exact = Vec::new();
        let mut patterns = Vec::new();
        let mut values = Vec::new();
        let mut micros = Vec::new();
        let mut count = 0;
        loop {
            count += 1;
            let value_start = self.i;
            if count > MAX_VALUES {
                return err(E_VALUES, value_start);
            }
            let Value {
                text,
                leading,
                trailing,
            } = self.lex_value()?;
            if let Some(c) = self.peek() {
                if !(is_space(c) || c == ')' || c == ',') {
                    return err(E_AFTER_VALUE, self.i);
                }
            }
            match field.kind {
                Kind::String | Kind::Metadata | Kind::Tags => match (leading, trailing) {
                    (true, true) => patterns.push(Pattern::Contains(text)),
                    (true, false) => patterns.push(Pattern::Suffix(text)),
                    (false, true) => patterns.push(Pattern::Prefix(text)),
                    (false, false) => exact.push(text),
                },
                _ if leading || trailing => return err(e_wildcard(&name), value_start),
                Kind::Status => {
                    let lowered = if text.is_ascii() {
                        text.to_ascii_lowercase()
                    } else {
                        text
                    };
                    if !STATUSES.contains(&lowered.as_str()) {
                        return err(E_STATUS, value_start);
                    }
                    exact.push(lowered);
                }
                Kind::Number => {
                    if !is_number(&text) {
                        return err(e_number(&name), value_start);
                    }
                    match text.parse::<f64>() {
                        Ok(v) if v.is_finite() => values.push(v),
                        Ok(_) => return err(e_number_range(&name), value_start),
                        Err(_) => return err(e_number(&name), value_start),
                    }
                }
                Kind::Timestamp => match time::parse(&text, self.now) {
                    Ok(m) => {
                        micros.push(m);
                        values.push(time::seconds(m));
                    }
                    Err(TimeError::Invalid) => return err(e_timestamp(&name), value_start),
                    Err(TimeError::OutOfRange) => {
                        return err(e_timestamp_range(&name), value_start)
                    }
                },
            }
            if self.peek() == Some(',') {
                self.i += 1;
                continue;
            }
            break;
        }
        Ok(match field.kind {
            Kind::Number => Node::Cmp(CompareTerm {
                field,
                op,
                values,
                micros: None,
            }),
            Kind::Timestamp => Node::Cmp(CompareTerm {
                field,
                op,
                values,
                micros: Some(micros),
            }),
            _ => Node::Str(StringTerm {
                field,
                key,
                exact,
                patterns,
            }),
        })
    }

    fn lex_value(&mut self) -> Result<Value, ParseError> {
        let start = self.i;
        let first = match self.peek() {
            Some(c) if c == '"' || !is_bare_stop(c) => c,
            _ => return err(E_EXPECTED_VALUE, start),
        };
        let mut chars: Vec<char> = Vec::new();
        // (index into chars, position in the expression) of each unescaped '*'.
        let mut stars: Vec<(usize, usize)> = Vec::new();
        let mut j;
        if first == '"' {
            j = start + 1;
            loop {
                let Some(&c) = self.s.get(j) else {
                    return err(E_UNTERMINATED, start);
                };
                if c == '"' {
                    j += 1;
                    break;
                }
                if c == '\\' {
                    let Some(&next) = self.s.get(j + 1) else {
                        return err(E_UNTERMINATED, start);
                    };
                    if !matches!(next, '"' | '\\' | '*') {
                        return err(E_ESCAPE, j);
                    }
                    chars.push(next);
                    j += 2;
                    continue;
                }
                if c == '*' {
                    stars.push((chars.len(), j));
                }
                chars.push(c);
                j += 1;
            }
        } else {
            j = start;
            while let Some(&c) = self.s.get(j) {
                if is_bare_stop(c) {
                    break;
                }
                if c == '*' {
                    stars.push((chars.len(), j));
                }
                chars.push(c);
                j += 1;
            }
        }
        let (mut leading, mut trailing) = (false, false);
        let last = chars.len().wrapping_sub(1);
        for &(index, position) in &stars {
            if index == 0 {
                leading = true;
            } else if index == last {
                trailing = true;
            } else {
                return err(E_STAR, position);
            }
        }
        self.i = j;
        let lo = usize::from(leading);
        let hi = if trailing { last } else { chars.len() };
        let text: String = chars.get(lo..hi).unwrap_or_default().iter().collect();
        Ok(Value {
            text,
            leading,
            trailing,
        })
    }
}

/// `[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?`, the reference's number syntax.
fn is_number(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_digits = digits(&mut i);
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = digits(&mut i);
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile_str(s: &str) -> Result<Node, ParseError> {
        let chars: Vec<char> = s.chars().collect();
        compile(&chars, 1_700_000_000_000_000)
    }

    #[test]
    fn numbers() {
        for ok in ["1", "+1", "-1.5", "1.", ".5", "1e5", "1E-5", "007"] {
            assert!(is_number(ok), "{ok}");
        }
        for bad in [
            "", ".", "e5", "1e", "inf", "nan", "1_0", "0x10", "--1", "1.2.3",
        ] {
            assert!(!is_number(bad), "{bad}");
        }
    }

    #[test]
    fn positions() {
        let e = compile_str("type:a AND").unwrap_err();
        assert_eq!(e.position, 10);
        let e = compile_str("name:a*b").unwrap_err();
        assert_eq!((e.message.as_str(), e.position), (E_STAR, 6));
        let e = compile_str("(x:y").unwrap_err();
        assert_eq!(e.position, 1);
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in [
            "\"",
            "\\",
            "*",
            "**",
            "***",
            "a:\"\\",
            "a:\"*\\*",
            "NOT",
            "(",
            ")",
            ":",
            "a:",
            "status:\"\"",
            "name:\"\"",
            "last_seen:-",
            "cpu_usage:>=",
            "é:é",
            "metadata.:x",
        ] {
            let _ = compile_str(s);
        }
    }
}
