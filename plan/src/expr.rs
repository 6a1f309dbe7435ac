//! Expressions as the runtime evaluates them: the syntax tree's shape without spans or
//! parentheses, with every literal typed and exact.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A length of time: exact seconds (`30m`, `2h`, `7d`: a day is always 86,400 s) or
/// calendar months (`6 months`, `1 year` = 12 months), which keep the day of month and
/// the clock time in UTC, clamped to the end of a shorter month.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Duration {
    Seconds(u64),
    Months(u64),
}

/// An expression. Names are not resolved: `contact`, a trigger's binding (`cart`), an
/// event (`order_completed`), a segment or a step label are all `name`s, and the
/// runtime reads them against the plan's schema and the run's bindings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Expr {
    /// An exact decimal as written (`80`, `80.00`); never a float.
    Number {
        value: String,
    },
    /// An exact decimal amount with its ISO 4217 currency (`80.00 EUR`).
    Money {
        amount: String,
        currency: String,
    },
    /// A percentage as an exact decimal (`10` for `10%`).
    Percent {
        value: String,
    },
    Duration {
        duration: Duration,
    },
    String {
        value: String,
    },
    Bool {
        value: bool,
    },
    /// A calendar date, `YYYY-MM-DD`.
    Date {
        value: String,
    },
    /// An instant in ISO 8601 with its offset, as written (`2026-03-01T10:00Z`).
    Datetime {
        value: String,
    },
    /// A local time of day, `HH:MM`.
    Time {
        value: String,
    },
    List {
        items: Vec<Expr>,
    },
    Object {
        entries: Vec<Entry>,
    },
    Name {
        name: String,
    },
    /// `object.name`
    Member {
        object: Box<Expr>,
        name: String,
    },
    /// `function(arg, ...)`; aggregates take `where` filters and `within` windows.
    Call {
        function: String,
        args: Vec<CallArg>,
    },
    Unary {
        op: UnaryOp,
        operand: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// `operand is set`, or `operand is not set` when `negated`.
    IsSet {
        operand: Box<Expr>,
        negated: bool,
    },
}

/// `key: value` in an object literal or a webhook body, in source order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Entry {
    pub key: String,
    pub value: Expr,
}

/// One argument of a call: `order_completed.total where total > 10 EUR within 365d`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CallArg {
    pub value: Expr,
    /// Evaluated against each event the argument names.
    pub filter: Option<Expr>,
    /// Only events stamped in the half-open window `(t - within, t]` count.
    pub within: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Add,
    Sub,
    Mul,
    Div,
}

/// The deepest JSON nesting an expression may have in a plan. JSON readers limit nesting
/// (`serde_json` to 128 levels, which the plan's own envelope shares), so the compiler
/// refuses deeper expressions rather than emit a plan that no daemon can load.
pub const MAX_EXPR_NESTING: usize = 100;

impl Expr {
    /// How many JSON objects and arrays deep this expression serialises (a literal or
    /// a name is 1). Compare with [`MAX_EXPR_NESTING`].
    pub fn json_nesting(&self) -> usize {
        fn max_of<'a>(items: impl Iterator<Item = &'a Expr>) -> usize {
            items.map(Expr::json_nesting).max().unwrap_or(0)
        }
        match self {
            Expr::Number { .. }
            | Expr::Money { .. }
            | Expr::Percent { .. }
            | Expr::String { .. }
            | Expr::Bool { .. }
            | Expr::Date { .. }
            | Expr::Datetime { .. }
            | Expr::Time { .. }
            | Expr::Name { .. } => 1,
            Expr::Duration { .. } => 2,
            // object, array, item
            Expr::List { items } => 2 + max_of(items.iter()),
            // object, array, entry object, value
            Expr::Object { entries } => 3 + max_of(entries.iter().map(|e| &e.value)),
            Expr::Member { object, .. } => 1 + object.json_nesting(),
            // object, array, argument object, then the deepest of value, filter, window
            Expr::Call { args, .. } => {
                let deepest = args
                    .iter()
                    .map(|a| {
                        let value = a.value.json_nesting();
                        let filter = a.filter.as_ref().map_or(0, Expr::json_nesting);
                        let window = if a.within.is_some() { 1 } else { 0 };
                        value.max(filter).max(window)
                    })
                    .max()
                    .unwrap_or(0);
                3 + deepest
            }
            Expr::Unary { operand, .. } | Expr::IsSet { operand, .. } => 1 + operand.json_nesting(),
            Expr::Binary { left, right, .. } => 1 + left.json_nesting().max(right.json_nesting()),
        }
    }
}
