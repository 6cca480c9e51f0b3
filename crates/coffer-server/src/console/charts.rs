//! Bar charts drawn on the server as SVG: no script, no library, readable
//! without JavaScript and under the console's CSP (presentation attributes
//! and classes only, no inline style).

use maud::{Markup, html};

/// One bar: its label (shown on hover), its value and whether it failed.
#[derive(Debug, Clone)]
pub struct Bar {
    /// What the bar is (a date, a backup id).
    pub label: String,
    /// Its height.
    pub value: f64,
    /// Drawn in the failure colour.
    pub failed: bool,
}

const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 160.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 20.0;
const TOP: f64 = 10.0;

/// A bar chart of `bars` (oldest first), the axis labelled with `fmt`.
pub fn bars(title: &str, bars: &[Bar], fmt: impl Fn(f64) -> String) -> Markup {
    let max = bars.iter().map(|b| b.value).fold(0.0_f64, f64::max);
    let plot_w = WIDTH - LEFT - 8.0;
    let plot_h = HEIGHT - BOTTOM - TOP;
    let step = plot_w / bars.len().max(1) as f64;
    let bar_w = (step * 0.8).max(1.0);
    html! {
        figure {
            svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(title) {
                title { (title) }
                line.axis x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(HEIGHT - BOTTOM) {}
                line.axis x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH - 8.0) y2=(HEIGHT - BOTTOM) {}
                text x="2" y=(TOP + 10.0) { (fmt(max)) }
                text x="2" y=(HEIGHT - BOTTOM) { (fmt(0.0)) }
                @for (i, b) in bars.iter().enumerate() {
                    @let h = if max > 0.0 { b.value / max * plot_h } else { 0.0 };
                    rect class=(if b.failed { "bar failed" } else { "bar" })
                        x=(format!("{:.1}", LEFT + i as f64 * step + (step - bar_w) / 2.0))
                        y=(format!("{:.1}", HEIGHT - BOTTOM - h))
                        width=(format!("{bar_w:.1}")) height=(format!("{h:.1}")) {
                        title { (b.label) ": " (fmt(b.value)) }
                    }
                }
            }
            figcaption.hint { (title) }
            details {
                summary { "Values" }
                table {
                    thead { tr { th { "When" } th { "Value" } } }
                    tbody { @for b in bars { tr { td.hash { (b.label) } td { (fmt(b.value)) @if b.failed { " (failed)" } } } } }
                }
            }
        }
    }
}
