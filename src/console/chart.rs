//! Charts drawn on the server as inline SVG: no script, no fetch, readable
//! without styles (each bar has its label and value as text).

use maud::{html, Markup};

/// Labels longer than this are cut (the full text is the label's tooltip).
const LABEL_CHARS: usize = 36;

fn short(label: &str) -> String {
    match label.char_indices().nth(LABEL_CHARS) {
        None => label.to_string(),
        Some((cut, _)) => format!("{}…", &label[..cut]),
    }
}

/// A horizontal bar chart of `(label, value)`, bars scaled to the largest.
pub fn bars(rows: &[(String, i64)]) -> Markup {
    const ROW: i64 = 22;
    const LABEL: i64 = 260;
    const WIDTH: i64 = 420;
    let max = rows.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let height = ROW * rows.len() as i64 + 4;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(LABEL + WIDTH + 80) height=(height)
            role="img" aria-label="bar chart" {
            @for (i, (label, value)) in rows.iter().enumerate() {
                @let y = i as i64 * ROW;
                @let w = (value * WIDTH / max).max(1);
                text x="0" y=(y + 15) font-size="13" { title { (label) } (short(label)) }
                rect x=(LABEL) y=(y + 3) width=(w) height=(ROW - 6) fill="#3b6fd6" {}
                text x=(LABEL + w + 6) y=(y + 15) font-size="13" { (value) }
            }
        }
    }
}
