//! Plain aligned text tables for human output (`vnode list`, `vnode plan`, ...). Cells hold
//! text from outside (a guest's PRETTY_NAME, image names, errors): each is made safe for the
//! terminal by [`terminal::escaped`] as it is added.

use crate::text::terminal;

/// A table with a header row; columns are padded to their widest cell, the last one is not.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let cells = cells
            .into_iter()
            .map(|c| terminal::escaped(&c.into()).into_owned());
        self.rows.push(cells.collect());
    }

    /// The table without the column headed `name` (e.g. HOST when there is one host only).
    pub fn without_column(mut self, name: &str) -> Table {
        if let Some(i) = self.header.iter().position(|h| h == name) {
            self.header.remove(i);
            for row in &mut self.rows {
                if i < row.len() {
                    row.remove(i);
                }
            }
        }
        self
    }

    pub fn render(&self) -> String {
        let cols = self.header.len();
        let mut widths = vec![0; cols];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 < cols {
                    line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
                } else {
                    line.push_str(cell);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_column_can_be_left_out() {
        let mut t = super::Table::new(["A", "HOST", "B"]);
        t.row(["1", "h1", "2"]);
        assert_eq!(t.without_column("HOST").render(), "A  B\n1  2\n");
    }

    #[test]
    fn cells_from_outside_are_escaped() {
        let mut t = super::Table::new(["NODE", "OS"]);
        t.row(["vnode03", "\u{1b}[2JEvil \u{202e}OS\n"]);
        assert_eq!(
            t.render(),
            "NODE     OS\nvnode03  \\u{1b}[2JEvil \\u{202e}OS\\n\n"
        );
    }

    #[test]
    fn columns_align() {
        let mut t = super::Table::new(["NAME", "IP"]);
        t.row(["vnode03", "198.18.0.103"]);
        t.row(["x", "-"]);
        assert_eq!(
            t.render(),
            "NAME     IP\nvnode03  198.18.0.103\nx        -\n"
        );
    }
}
