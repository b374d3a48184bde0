//! The ListOperations filter parser: never panics, and whatever it accepts
//! renders back to a filter that parses to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rolekeeper::operations::filter;

fuzz_target!(|text: &str| {
    let Ok(parsed) = filter::parse(text) else {
        return;
    };
    let mut terms = Vec::new();
    if let Some(done) = parsed.done {
        terms.push(format!("done={done}"));
    }
    if let Some(target) = &parsed.target {
        terms.push(format!("target=\"{target}\""));
    }
    if let Some(verb) = &parsed.verb {
        terms.push(format!("verb=\"{verb}\""));
    }
    let rendered = terms.join(" AND ");
    let again = filter::parse(&rendered).expect("a rendered filter parses");
    assert_eq!(again, parsed, "`{text}` rendered as `{rendered}`");
});
