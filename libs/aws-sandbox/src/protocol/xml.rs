//! A minimal XML writer: the sandbox only writes XML, it never parses it.

use std::fmt::{Display, Write};

/// Builds an XML fragment; elements are closed by the caller in order.
#[derive(Debug, Default)]
pub(crate) struct XmlWriter {
    buffer: String,
}

impl XmlWriter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn open(&mut self, name: &str) -> &mut Self {
        self.buffer.push('<');
        self.buffer.push_str(name);
        self.buffer.push('>');
        self
    }

    pub fn close(&mut self, name: &str) -> &mut Self {
        self.buffer.push_str("</");
        self.buffer.push_str(name);
        self.buffer.push('>');
        self
    }

    /// Writes `<name>value</name>` with the value escaped.
    pub fn element(&mut self, name: &str, value: impl Display) -> &mut Self {
        self.open(name);
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = write!(text, "{value}");
        self.buffer.push_str(&escape(&text));
        self.close(name)
    }

    /// Writes the element only when there is a value.
    pub fn optional(&mut self, name: &str, value: Option<impl Display>) -> &mut Self {
        if let Some(value) = value {
            self.element(name, value);
        }
        self
    }

    pub fn finish(self) -> String {
        self.buffer
    }
}

/// Escapes text for element content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_text_is_escaped() {
        let mut xml = XmlWriter::new();
        xml.open("a")
            .element("b", "x<y&z")
            .optional("c", None::<&str>)
            .close("a");
        assert_eq!(xml.finish(), "<a><b>x&lt;y&amp;z</b></a>");
    }
}
