//! The `detection` section: search identifiers compiled to matchers, and their evaluation.

use std::collections::HashMap;

use crate::condition::{self, Aggregation, Condition};
use crate::error::{ErrorCode, Position, SigmaError};
use crate::event::EventView;
use crate::matcher::{FieldId, ValueMatcher};
use crate::modifier::Modifiers;
use crate::yaml::{Node, NodeValue};
use crate::FieldTable;

/// One `field|modifiers: values` item (or a keyword list when `field` is `None`).
#[derive(Debug, Clone)]
pub struct FieldCondition {
    /// The field, or `None` for a keyword search over every value.
    pub field: Option<FieldId>,
    /// Per listed value, the matchers any of which satisfies it.
    pub values: Vec<Vec<ValueMatcher>>,
    /// Whether every listed value must hold (`all`) instead of any.
    pub all: bool,
    /// Lower-cased literals of which at least one must occur in the event for this item to
    /// hold; `None` when no such set exists (regex, null, negation …).
    pub required: Option<Vec<Needle>>,
}

impl FieldCondition {
    fn matches(&self, event: &dyn EventView) -> bool {
        match self.field {
            Some(id) => {
                let values = event.field(id);
                let one = |alts: &Vec<ValueMatcher>| alts.iter().any(|m| m.matches(values, event));
                if self.all {
                    self.values.iter().all(one)
                } else {
                    self.values.iter().any(one)
                }
            }
            None => {
                let all = event.all_values();
                let one = |alts: &Vec<ValueMatcher>| {
                    alts.iter().any(|m| all.iter().any(|v| m.matches_value(v)))
                };
                if self.all {
                    self.values.iter().all(one)
                } else {
                    self.values.iter().any(one)
                }
            }
        }
    }
}

/// A search identifier: alternatives (a list of maps) each of which ANDs its items.
#[derive(Debug, Clone)]
pub struct Search {
    /// The identifier.
    pub name: String,
    /// OR-linked alternatives of AND-linked items.
    pub alternatives: Vec<Vec<FieldCondition>>,
}

impl Search {
    /// Whether the search holds for an event.
    pub fn matches(&self, event: &dyn EventView) -> bool {
        self.alternatives
            .iter()
            .any(|items| items.iter().all(|c| c.matches(event)))
    }

    /// Literals of which one must occur for the search to hold, if such a set exists.
    pub fn required(&self) -> Option<Vec<Literal>> {
        let mut union = Vec::new();
        for items in &self.alternatives {
            union.extend(best_of(items.iter().map(FieldCondition::literals))?);
        }
        Some(union)
    }
}

/// A lower-cased literal of one rule value: text some event value must contain, or, when
/// `exact`, be equal to (both lower-cased).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Needle {
    /// The lower-cased text.
    pub text: String,
    /// Whether a matching value is the whole text, not only contains it.
    pub exact: bool,
}

/// A lower-cased literal that must occur in the values of `field` (in any value of the
/// event, for a keyword search) for some part of a condition to hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Literal {
    /// The field whose values hold the literal, or `None` for any value.
    pub field: Option<FieldId>,
    /// The lower-cased text.
    pub text: String,
    /// Whether some value of the field must equal the text (lower-cased), not only contain
    /// it. Never set for keyword searches.
    pub exact: bool,
}

/// How selective a literal is, for choosing among alternative sets: its length, and for an
/// exact literal a little more (a whole value equal to `16` is rarer than a value holding
/// `16`, but an EventID says little next to an image name).
pub trait Selectivity {
    /// The weight.
    fn weight(&self) -> usize;
}

fn weight(text: &str, exact: bool) -> usize {
    text.len() + if exact { 2 } else { 0 }
}

impl Selectivity for Needle {
    fn weight(&self) -> usize {
        weight(&self.text, self.exact)
    }
}

impl Selectivity for Literal {
    fn weight(&self) -> usize {
        weight(&self.text, self.exact)
    }
}

impl FieldCondition {
    fn literals(&self) -> Option<Vec<Literal>> {
        let set = self.required.as_ref()?;
        Some(
            set.iter()
                .map(|n| Literal {
                    field: self.field,
                    text: n.text.clone(),
                    // A keyword is found anywhere in a value: equality is not required.
                    exact: n.exact && self.field.is_some(),
                })
                .collect(),
        )
    }
}

/// Among alternative literal sets that are each necessary, the most selective one.
pub fn best_of<T: Selectivity>(sets: impl Iterator<Item = Option<Vec<T>>>) -> Option<Vec<T>> {
    sets.flatten().filter(|s| !s.is_empty()).max_by_key(|s| {
        s.iter().map(Selectivity::weight).min().unwrap_or(0) * 64 / s.len().clamp(1, 64)
    })
}

/// A compiled detection: searches and the condition over them.
#[derive(Debug, Clone)]
pub struct Detection {
    /// The search identifiers, in document order.
    pub searches: Vec<Search>,
    /// The condition.
    pub condition: Condition,
    /// A Sigma v1 aggregation after the condition (`| count() by x > 5`), if any; a rule
    /// with one is not evaluated per event.
    pub aggregation: Option<Aggregation>,
}

impl Detection {
    /// Evaluates the condition; returns the names of the searches that held, or `None`.
    pub fn evaluate(&self, event: &dyn EventView) -> Option<Vec<usize>> {
        // Most detections have a handful of searches: their memo lives on the stack.
        let mut small = [None; 16];
        let mut large = Vec::new();
        let memo: &mut [Option<bool>] = if self.searches.len() <= small.len() {
            &mut small[..self.searches.len()]
        } else {
            large.resize(self.searches.len(), None);
            &mut large
        };
        if eval(&self.condition, &self.searches, event, memo) {
            Some(
                memo.iter()
                    .enumerate()
                    .filter(|(_, m)| **m == Some(true))
                    .map(|(i, _)| i)
                    .collect(),
            )
        } else {
            None
        }
    }

    /// Literals of which one must occur in an event for the condition to hold.
    pub fn required(&self) -> Option<Vec<Literal>> {
        required(&self.condition, &self.searches)
    }
}

fn eval(
    c: &Condition,
    searches: &[Search],
    event: &dyn EventView,
    memo: &mut [Option<bool>],
) -> bool {
    let search = |i: usize, memo: &mut [Option<bool>]| -> bool {
        *memo[i].get_or_insert_with(|| searches[i].matches(event))
    };
    match c {
        Condition::Search(i) => search(*i, memo),
        Condition::Not(inner) => !eval(inner, searches, event, memo),
        Condition::And(items) => items.iter().all(|i| eval(i, searches, event, memo)),
        Condition::Or(items) => items.iter().any(|i| eval(i, searches, event, memo)),
        Condition::AtLeast(n, ids) => {
            let mut count = 0;
            for &i in ids {
                if search(i, memo) {
                    count += 1;
                    if count >= *n {
                        return true;
                    }
                }
            }
            *n == 0
        }
    }
}

fn required(c: &Condition, searches: &[Search]) -> Option<Vec<Literal>> {
    match c {
        Condition::Search(i) => searches[*i].required(),
        Condition::Not(_) => None,
        Condition::And(items) => best_of(items.iter().map(|i| required(i, searches))),
        Condition::Or(items) => {
            let mut union = Vec::new();
            for i in items {
                union.extend(required(i, searches)?);
            }
            Some(union)
        }
        Condition::AtLeast(n, ids) if *n == ids.len() && *n > 0 => {
            best_of(ids.iter().map(|i| searches[*i].required()))
        }
        Condition::AtLeast(n, ids) if *n > 0 => {
            let mut union = Vec::new();
            for i in ids {
                union.extend(searches[*i].required()?);
            }
            Some(union)
        }
        Condition::AtLeast(..) => None,
    }
}

/// Options that change how values compile.
#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    /// Values for `expand` placeholders, by name without the `%` signs.
    pub placeholders: HashMap<String, Vec<String>>,
}

/// Compiles a `detection` mapping.
pub fn compile(
    node: &Node,
    fields: &mut FieldTable,
    options: &CompileOptions,
    warnings: &mut Vec<SigmaError>,
) -> Result<Detection, SigmaError> {
    let Some(entries) = node.as_map() else {
        return Err(SigmaError::new(
            ErrorCode::InvalidField,
            node.position,
            format!("'detection' must be a mapping, found {}", node.kind()),
        ));
    };
    let mut searches = Vec::new();
    let mut condition_nodes: Vec<&Node> = Vec::new();
    for (key, value) in entries {
        let Some(name) = key.scalar_text() else {
            return Err(SigmaError::new(
                ErrorCode::InvalidField,
                key.position,
                "a search identifier must be a string",
            ));
        };
        match name.as_str() {
            "condition" => match &value.value {
                NodeValue::Seq(items) => condition_nodes.extend(items.iter()),
                _ => condition_nodes.push(value),
            },
            "timeframe" => {}
            _ => searches.push(compile_search(&name, value, fields, options, warnings)?),
        }
    }
    let names: Vec<String> = searches.iter().map(|s| s.name.clone()).collect();
    if condition_nodes.is_empty() {
        return Err(SigmaError::new(
            ErrorCode::MissingField,
            node.position,
            "the detection has no 'condition'",
        )
        .expected("condition: <expression over search identifiers>"));
    }
    let mut conditions = Vec::new();
    let mut aggregation = None;
    for c in condition_nodes {
        let Some(text) = c.as_str() else {
            return Err(SigmaError::new(
                ErrorCode::InvalidField,
                c.position,
                "'condition' must be a string",
            ));
        };
        let (parsed, agg) = condition::parse_aggregated(text, &names, c.position)?;
        conditions.push(parsed);
        aggregation = aggregation.or(agg);
    }
    let condition = if conditions.len() == 1 {
        conditions.remove(0)
    } else {
        Condition::Or(conditions)
    };
    Ok(Detection {
        searches,
        condition,
        aggregation,
    })
}

fn compile_search(
    name: &str,
    node: &Node,
    fields: &mut FieldTable,
    options: &CompileOptions,
    warnings: &mut Vec<SigmaError>,
) -> Result<Search, SigmaError> {
    let alternatives = match &node.value {
        NodeValue::Map(entries) => vec![compile_map(entries, fields, options, warnings)?],
        NodeValue::Seq(items)
            if !items.is_empty() && items.iter().all(|i| i.as_map().is_some()) =>
        {
            items
                .iter()
                .map(|i| compile_map(i.as_map().unwrap_or_default(), fields, options, warnings))
                .collect::<Result<_, _>>()?
        }
        NodeValue::Seq(items) if items.iter().any(|i| i.as_map().is_some()) => {
            return Err(SigmaError::new(
                ErrorCode::InvalidField,
                node.position,
                format!("search '{name}' mixes mappings and plain values in one list"),
            ))
        }
        NodeValue::Seq(items) if items.is_empty() => {
            return Err(SigmaError::new(
                ErrorCode::InvalidField,
                node.position,
                format!("search '{name}' is empty"),
            ))
        }
        _ => vec![vec![compile_item(
            None,
            &[],
            node,
            fields,
            options,
            warnings,
        )?]],
    };
    Ok(Search {
        name: name.to_string(),
        alternatives,
    })
}

fn compile_map(
    entries: &[(Node, Node)],
    fields: &mut FieldTable,
    options: &CompileOptions,
    warnings: &mut Vec<SigmaError>,
) -> Result<Vec<FieldCondition>, SigmaError> {
    let mut items = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let Some(text) = key.scalar_text() else {
            return Err(SigmaError::new(
                ErrorCode::InvalidField,
                key.position,
                "a field name must be a string",
            ));
        };
        let mut parts = text.split('|');
        let field = parts.next().unwrap_or_default();
        let mods: Vec<&str> = parts.collect();
        let modifiers = Modifiers::parse(&mods, key.position)?;
        let field = (!field.is_empty()).then_some(field);
        items.push(compile_values(
            field, modifiers, value, fields, options, warnings,
        )?);
    }
    Ok(items)
}

fn compile_item(
    field: Option<&str>,
    mods: &[&str],
    node: &Node,
    fields: &mut FieldTable,
    options: &CompileOptions,
    warnings: &mut Vec<SigmaError>,
) -> Result<FieldCondition, SigmaError> {
    let modifiers = Modifiers::parse(mods, node.position)?;
    compile_values(field, modifiers, node, fields, options, warnings)
}

fn compile_values(
    field: Option<&str>,
    mut modifiers: Modifiers,
    node: &Node,
    fields: &mut FieldTable,
    options: &CompileOptions,
    warnings: &mut Vec<SigmaError>,
) -> Result<FieldCondition, SigmaError> {
    if field.is_none() {
        // Keywords search the whole event as substrings unless a modifier says otherwise.
        modifiers.default_to_contains();
    }
    let single = [node.clone()];
    let list: &[Node] = match &node.value {
        NodeValue::Seq(items) if items.is_empty() => {
            return Err(SigmaError::new(
                ErrorCode::InvalidValue,
                node.position,
                "an empty list of values never matches",
            )
            .expected("at least one value"))
        }
        NodeValue::Seq(items) => items,
        NodeValue::Map(_) => {
            return Err(SigmaError::new(
                ErrorCode::InvalidValue,
                node.position,
                "a field's value cannot be a mapping",
            )
            .expected("a value, null or a list of values"))
        }
        _ => &single,
    };
    let mut values = Vec::with_capacity(list.len());
    let mut sets = Vec::with_capacity(list.len());
    for item in list {
        let (matchers, literals) =
            modifiers.compile_value(item, fields, &options.placeholders, warnings)?;
        values.push(matchers);
        sets.push(literals.filter(|set| set.iter().all(selective)));
    }
    let required = if modifiers.all {
        best_of(sets.into_iter())
    } else {
        sets.into_iter().try_fold(Vec::new(), |mut acc, s| {
            acc.extend(s?);
            Some(acc)
        })
    };
    Ok(FieldCondition {
        field: field.map(|f| fields.intern(f)),
        values,
        all: modifiers.all,
        required,
    })
}

/// Whether a literal is worth looking for in the prefilter. One or two bytes (`" "`, `"."`,
/// `" -e"` is fine) and short numbers (Sysmon's EventID `2`, a port `80`) occur several times
/// in nearly every event, so finding them inside values says little about the rule and
/// reporting each occurrence costs more than evaluating the rule; a whole value equal to one
/// (an exact literal, looked up, not searched for) is worth it. A value whose literals are
/// not all selective offers none; under `and` a sibling's literals then stand for the item.
fn selective(literal: &Needle) -> bool {
    let text = &literal.text;
    literal.exact
        || (text.len() >= 3 && !(text.len() < 4 && text.bytes().all(|b| b.is_ascii_digit())))
}

/// The position of a node, for callers that report on a detection.
pub fn position_of(node: &Node) -> Position {
    node.position
}
