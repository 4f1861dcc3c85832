//! What every console form shares: labelled fields whose hint and error a screen reader reads
//! with them (`aria-describedby`), the API's validation errors put beside the field they are
//! about, and the conversions between what a person types (a local date and time in UTC, a
//! price like 45.00) and what the API takes.

use maud::{Markup, html};
use time::{PrimitiveDateTime, format_description::well_known::Rfc3339, macros::format_description};

use crate::api::Problem;

/// The problems of a sent form: each beside its field (named by the field's id), or above the
/// form when no field is theirs.
#[derive(Debug, Default)]
pub struct Errors {
    fields: Vec<(String, String)>,
    general: Vec<String>,
}

impl Errors {
    pub fn field(&mut self, id: &str, words: impl Into<String>) {
        self.fields.push((id.to_owned(), words.into()));
    }

    pub fn general(&mut self, words: impl Into<String>) {
        self.general.push(words.into());
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.general.is_empty()
    }

    /// The error of the field with this id.
    pub fn of(&self, id: &str) -> Option<&str> {
        self.fields.iter().find(|(field, _)| field == id).map(|(_, words)| words.as_str())
    }

    /// The API's validation errors: `place` names the field id and label for an error's path
    /// (`venue.name`); one it does not know is said above the form.
    pub fn from_problem(problem: &Problem, place: impl Fn(&str) -> Option<(&'static str, &'static str)>) -> Self {
        let mut errors = Self::default();
        for error in &problem.errors {
            let message = in_words(&error.message);
            match place(&error.field) {
                Some((id, label)) if errors.of(id).is_none() => errors.field(id, format!("{label} {message}.")),
                Some(_) => {}
                None => errors.general(format!("{}: {message}.", error.field)),
            }
        }
        if problem.errors.is_empty() {
            errors.general(if problem.detail.is_empty() {
                "That was refused.".to_owned()
            } else {
                problem.detail.clone()
            });
        }
        errors
    }

    /// The alert above a form that was sent back: what is wrong, each linked to its field.
    pub fn summary(&self) -> Markup {
        html! {
            @if !self.is_empty() {
                div.alert role="alert" {
                    p { "Please correct this:" }
                    ul {
                        @for words in &self.general { li { (words) } }
                        @for (id, words) in &self.fields { li { a href={ "#" (id) } { (words) } } }
                    }
                }
            }
        }
    }
}

/// The API's messages name fields by their wire names; people read them as words.
fn in_words(message: &str) -> String {
    message.replace("starts_at", "the start").replace("ends_at", "the end").replace("opens_at", "the opening time")
}

/// One labelled single-line field.
pub struct Input<'a> {
    /// The field's id, unique on the page.
    pub id: &'a str,
    /// Its name in the form: the id, unless one page has several forms with this field.
    pub name: &'a str,
    pub label: &'a str,
    /// `text`, `email`, `number`, `datetime-local`.
    pub kind: &'a str,
    pub value: &'a str,
    pub hint: Option<&'a str>,
    pub required: bool,
}

impl<'a> Input<'a> {
    pub fn text(id: &'a str, label: &'a str, value: &'a str) -> Self {
        Self { id, name: id, label, kind: "text", value, hint: None, required: true }
    }

    pub fn named(self, name: &'a str) -> Self {
        Self { name, ..self }
    }

    pub fn kind(self, kind: &'a str) -> Self {
        Self { kind, ..self }
    }

    pub fn hint(self, hint: &'a str) -> Self {
        Self { hint: Some(hint), ..self }
    }

    pub fn optional(self) -> Self {
        Self { required: false, ..self }
    }

    pub fn render(&self, errors: &Errors) -> Markup {
        let error = errors.of(self.id);
        let described = described_by(self.id, self.hint.is_some(), error.is_some());
        html! {
            p.field {
                (label_hint_error(self.id, self.label, self.hint, error))
                input id=(self.id) name=(self.name) type=(self.kind) value=(self.value) required[self.required]
                    aria-invalid=[error.map(|_| "true")] aria-describedby=[described];
            }
        }
    }
}

/// A labelled text area (the description, a reason).
pub fn textarea(errors: &Errors, input: &Input<'_>, rows: u8) -> Markup {
    let error = errors.of(input.id);
    let described = described_by(input.id, input.hint.is_some(), error.is_some());
    html! {
        p.field {
            (label_hint_error(input.id, input.label, input.hint, error))
            textarea id=(input.id) name=(input.name) rows=(rows) required[input.required]
                aria-invalid=[error.map(|_| "true")] aria-describedby=[described] { (input.value) }
        }
    }
}

/// A labelled choice of one of `options` (value, words).
pub fn select(errors: &Errors, input: &Input<'_>, options: &[(&str, &str)]) -> Markup {
    let (id, chosen) = (input.id, input.value);
    let error = errors.of(id);
    let described = described_by(id, false, error.is_some());
    html! {
        p.field {
            (label_hint_error(id, input.label, None, error))
            select id=(id) name=(input.name) aria-invalid=[error.map(|_| "true")] aria-describedby=[described] {
                @for (value, words) in options {
                    option value=(value) selected[*value == chosen] { (words) }
                }
            }
        }
    }
}

fn label_hint_error(id: &str, label: &str, hint: Option<&str>, error: Option<&str>) -> Markup {
    html! {
        label for=(id) { (label) }
        @if let Some(hint) = hint { span.hint id={ (id) "-hint" } { (hint) } }
        @if let Some(error) = error { span.field-error id={ (id) "-error" } { (error) } }
    }
}

fn described_by(id: &str, hint: bool, error: bool) -> Option<String> {
    match (hint, error) {
        (false, false) => None,
        (true, false) => Some(format!("{id}-hint")),
        (false, true) => Some(format!("{id}-error")),
        (true, true) => Some(format!("{id}-error {id}-hint")),
    }
}

/// "2027-06-01T19:30", as a `datetime-local` field shows it, from the API's RFC 3339 time
/// (the console speaks UTC throughout, and says so on every time field).
pub fn form_time(rfc3339: &str) -> String {
    time::OffsetDateTime::parse(rfc3339, &Rfc3339)
        .ok()
        .and_then(|t| {
            t.to_offset(time::UtcOffset::UTC).format(format_description!("[year]-[month]-[day]T[hour]:[minute]")).ok()
        })
        .unwrap_or_default()
}

/// The API's RFC 3339 time from what a `datetime-local` field sends (or a person types, with a
/// space instead of the `T`), read as UTC; `None` when it is not a time.
pub fn api_time(typed: &str) -> Option<String> {
    let typed = typed.trim().replacen(' ', "T", 1);
    let minutes = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let seconds = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let at = PrimitiveDateTime::parse(&typed, minutes).or_else(|_| PrimitiveDateTime::parse(&typed, seconds)).ok()?;
    at.assume_utc().format(&Rfc3339).ok()
}

/// Minor units from a price as people write it ("45", "45.5", "45,50") in a currency with
/// `digits` digits after the point; `None` when it is not one.
pub fn price_minor(typed: &str, digits: u32) -> Option<i64> {
    let typed = typed.trim();
    let (whole, fraction) = match typed.split_once(['.', ',']) {
        Some((_, "")) => return None,
        Some(parts) => parts,
        None => (typed, ""),
    };
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !is_digits(whole) || !is_digits(fraction) || fraction.len() > digits as usize {
        return None;
    }
    // "45.5" is 45.50: the fraction padded to the currency's digits.
    let padded = format!("{fraction:0<width$}", width = digits as usize);
    let fraction: i64 = if padded.is_empty() { 0 } else { padded.parse().ok()? };
    whole.parse::<i64>().ok()?.checked_mul(10_i64.checked_pow(digits)?)?.checked_add(fraction)
}

/// A whole number a person typed; `None` when it is not one.
pub fn whole_number(typed: &str) -> Option<i64> {
    typed.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_go_between_the_field_and_the_api_in_utc() {
        assert_eq!(form_time("2027-06-01T19:30:00Z"), "2027-06-01T19:30");
        assert_eq!(form_time("2027-06-01T21:30:00+02:00"), "2027-06-01T19:30");
        assert_eq!(api_time("2027-06-01T19:30").as_deref(), Some("2027-06-01T19:30:00Z"));
        assert_eq!(api_time(" 2027-06-01 19:30:15 ").as_deref(), Some("2027-06-01T19:30:15Z"));
        assert_eq!(api_time("tomorrow"), None);
        assert_eq!(api_time("2027-02-30T10:00"), None);
    }

    #[test]
    fn prices_are_read_in_minor_units() {
        assert_eq!(price_minor("45", 2), Some(4500));
        assert_eq!(price_minor("45.5", 2), Some(4550));
        assert_eq!(price_minor("45,05", 2), Some(4505));
        assert_eq!(price_minor("0", 2), Some(0));
        assert_eq!(price_minor("1500", 0), Some(1500));
        assert_eq!(price_minor("1.234", 3), Some(1234));
        for wrong in ["", "-1", "4.567", "12.", "1e3", "ten", "1.5", "99999999999999999999"] {
            let digits = if wrong == "1.5" { 0 } else { 2 };
            assert_eq!(price_minor(wrong, digits), None, "{wrong}");
        }
    }

    #[test]
    fn field_errors_land_beside_their_field_in_words() {
        let problem: Problem = serde_json::from_value(serde_json::json!({
            "type": "https://eventhive.dev/problems/validation",
            "errors": [
                {"field": "venue.name", "message": "must be 1 to 200 characters"},
                {"field": "ends_at", "message": "must be after starts_at"},
                {"field": "mystery", "message": "is odd"},
            ],
        }))
        .unwrap();
        let errors = Errors::from_problem(&problem, |field| match field {
            "venue.name" => Some(("venue_name", "Venue")),
            "ends_at" => Some(("ends_at", "Ends")),
            _ => None,
        });
        assert_eq!(errors.of("venue_name"), Some("Venue must be 1 to 200 characters."));
        assert_eq!(errors.of("ends_at"), Some("Ends must be after the start."));
        let field = Input::text("venue_name", "Venue", "").render(&errors).into_string();
        assert!(field.contains(r#"aria-describedby="venue_name-error""#), "{field}");
        assert!(field.contains(r#"aria-invalid="true""#), "{field}");
        let summary = errors.summary().into_string();
        assert!(summary.contains("mystery: is odd.") && summary.contains(r##"href="#ends_at""##), "{summary}");
    }
}
