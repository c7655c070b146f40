//! The chart of credits over the last 90 days, drawn as SVG on the server: the page's
//! template writes the elements, this module places them. Two lines (general and agent
//! credits at the end of each local day), a few labelled ticks, and the same figures as a
//! table for readers who do not see the chart.
//!
//! Plotters' SVG backend was weighed: its text needs a font backend (and a font file in
//! the binary) to lay out labels, while these labels are a handful of dates and numbers
//! that the browser sets in the page's own fonts, in either language.

use creditd_ledger::DayBalance;

use super::i18n::Lang;

/// Width of the drawing, in SVG units (it scales to the page's width).
const WIDTH: f64 = 640.0;
/// Height of the drawing.
const HEIGHT: f64 = 220.0;
/// Room for the value labels on the left.
const LEFT: f64 = 76.0;
/// Room on the right so the last point's marker is not cut.
const RIGHT: f64 = 12.0;
/// Room above the highest line.
const TOP: f64 = 14.0;
/// Room for the date labels below.
const BOTTOM: f64 = 30.0;

/// A labelled tick on an axis.
#[derive(Debug)]
pub struct Tick {
    /// Where it sits (x for dates, y for values).
    pub at: String,
    /// Its label.
    pub label: String,
    /// How the label sits on its place (`start`, `middle`, `end`), so the first and
    /// last dates stay inside the drawing.
    pub anchor: &'static str,
}

/// The chart, placed.
#[derive(Debug)]
pub struct Chart {
    /// The `viewBox` of the drawing.
    pub view_box: String,
    /// The general credits line (`points` of a polyline).
    pub general: String,
    /// The agent credits line.
    pub agent: String,
    /// Horizontal grid lines with their values.
    pub values: Vec<Tick>,
    /// Dates along the bottom.
    pub dates: Vec<Tick>,
    /// Where the plot area starts and ends, for the grid lines.
    pub left: String,
    /// The right edge of the plot area.
    pub right: String,
    /// The baseline's y.
    pub baseline: String,
    /// The last day's figures, for the markers at the lines' ends.
    pub last_general: (String, String),
    /// The agent line's end.
    pub last_agent: (String, String),
}

impl Chart {
    /// Places `days` (oldest first, at least one).
    pub fn new(days: &[DayBalance], lang: Lang) -> Chart {
        let top_value = days
            .iter()
            .flat_map(|d| [d.general, d.agent])
            .max()
            .unwrap_or(0)
            .max(1);
        let scale_top = nice_ceiling(top_value);
        let plot_width = WIDTH - LEFT - RIGHT;
        let plot_height = HEIGHT - TOP - BOTTOM;
        let steps = days.len().saturating_sub(1).max(1) as f64;
        let x = |i: usize| LEFT + plot_width * (i as f64) / steps;
        let y = |value: i64| TOP + plot_height * (1.0 - (value.max(0) as f64) / scale_top as f64);
        let line = |value: fn(&DayBalance) -> i64| {
            days.iter()
                .enumerate()
                .map(|(i, d)| format!("{:.1},{:.1}", x(i), y(value(d))))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let values = [0, scale_top / 2, scale_top]
            .into_iter()
            .map(|v| Tick {
                at: format!("{:.1}", y(v)),
                label: lang.number(v),
                anchor: "end",
            })
            .collect();
        let last = days.len().saturating_sub(1);
        let dates = [0, last / 2, last]
            .into_iter()
            .filter_map(|i| days.get(i).map(|d| (i, d)))
            .map(|(i, d)| Tick {
                at: format!("{:.1}", x(i)),
                label: lang.short_date(d.date),
                anchor: match i {
                    0 => "start",
                    i if i == last => "end",
                    _ => "middle",
                },
            })
            .collect();
        let end = days.last();
        Chart {
            view_box: format!("0 0 {WIDTH} {HEIGHT}"),
            general: line(|d| d.general),
            agent: line(|d| d.agent),
            values,
            dates,
            left: format!("{LEFT}"),
            right: format!("{}", WIDTH - RIGHT),
            baseline: format!("{:.1}", y(0)),
            last_general: (
                format!("{:.1}", x(last)),
                format!("{:.1}", y(end.map_or(0, |d| d.general))),
            ),
            last_agent: (
                format!("{:.1}", x(last)),
                format!("{:.1}", y(end.map_or(0, |d| d.agent))),
            ),
        }
    }
}

/// The smallest of 1, 2 or 5 times a power of ten that is at least `value`, so the
/// value labels are round.
fn nice_ceiling(value: i64) -> i64 {
    let mut power = 1_i64;
    loop {
        for step in [1, 2, 5] {
            let candidate = power.saturating_mul(step);
            if candidate >= value {
                return candidate;
            }
        }
        match power.checked_mul(10) {
            Some(next) => power = next,
            None => return i64::MAX,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_ends_on_a_round_number() {
        assert_eq!(nice_ceiling(1), 1);
        assert_eq!(nice_ceiling(3), 5);
        assert_eq!(nice_ceiling(640), 1_000);
        assert_eq!(nice_ceiling(1_001), 2_000);
    }

    #[test]
    fn a_line_runs_from_the_first_day_at_the_left_to_the_last_at_the_right() {
        let day = |d: &str, general| DayBalance {
            date: d.parse().expect("date"),
            general,
            agent: 0,
        };
        let chart = Chart::new(&[day("2026-12-01", 0), day("2026-12-02", 100)], Lang::En);
        assert_eq!(chart.general, "76.0,190.0 628.0,14.0");
        assert_eq!(chart.values.last().map(|t| t.label.as_str()), Some("100"));
        assert_eq!(chart.dates[0].label, "Dec 1");
    }
}
