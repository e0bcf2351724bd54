//! Reading a node's attributes at load time, with messages naming the node.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::onnx::{AttrValue, Node};

/// Reads attributes of one node with messages naming it.
pub(crate) struct Attrs<'n, 'a> {
    pub node: &'n Node<'a>,
    pub label: &'n str,
}

impl<'n, 'a> Attrs<'n, 'a> {
    pub fn err(&self, reason: String) -> Error {
        Error::InvalidNode {
            node: self.label.to_string(),
            op: self.node.op_type.to_string(),
            reason,
        }
    }

    /// The attribute `name` when present.
    pub fn get(&self, name: &str) -> Option<&'n AttrValue<'a>> {
        self.node.attr(name)
    }

    /// Attribute `name` read by `pick`, `default` when absent; another kind is an error
    /// naming `what` was expected.
    fn typed<T>(
        &self,
        name: &str,
        default: T,
        what: &str,
        pick: impl Fn(&AttrValue<'a>) -> Option<T>,
    ) -> Result<T> {
        match self.node.attr(name) {
            None => Ok(default),
            Some(v) => pick(v).ok_or_else(|| {
                self.err(format!(
                    "attribute '{name}' must be {what}, got {}",
                    kind(v)
                ))
            }),
        }
    }

    pub fn int(&self, name: &str, default: i64) -> Result<i64> {
        self.typed(name, default, "an int", |v| match v {
            AttrValue::Int(v) => Some(*v),
            _ => None,
        })
    }

    pub fn float(&self, name: &str, default: f32) -> Result<f32> {
        self.typed(name, default, "a float", |v| match v {
            AttrValue::Float(v) => Some(*v),
            _ => None,
        })
    }

    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        self.typed(name, None, "ints", |v| match v {
            AttrValue::Ints(v) => Some(Some(v.clone())),
            _ => None,
        })
    }

    /// An optional float attribute (no ONNX default).
    pub fn opt_float(&self, name: &str) -> Result<Option<f32>> {
        match self.node.attr(name) {
            Some(_) => Ok(Some(self.float(name, 0.0)?)),
            None => Ok(None),
        }
    }

    pub fn flag(&self, name: &str, default: bool) -> Result<bool> {
        match self.int(name, default as i64)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.err(format!("attribute '{name}' must be 0 or 1, got {v}"))),
        }
    }

    /// Refuses a node that uses its optional output `index` (`what` says why).
    pub fn unused_output(&self, index: usize, what: &str) -> Result<()> {
        if self.node.outputs.get(index).is_some_and(|o| !o.is_empty()) {
            return Err(self.err(what.to_string()));
        }
        Ok(())
    }
}

/// The kind of an attribute value, for messages.
pub(crate) fn kind(v: &AttrValue<'_>) -> &'static str {
    match v {
        AttrValue::Float(_) => "a float",
        AttrValue::Int(_) => "an int",
        AttrValue::String(_) => "a string",
        AttrValue::Tensor(_) => "a tensor",
        AttrValue::Graph(_) => "a graph",
        AttrValue::Floats(_) => "floats",
        AttrValue::Ints(_) => "ints",
        AttrValue::Strings(_) => "strings",
    }
}
