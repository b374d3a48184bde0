//! Page requests: parsing never panics, negative sizes are refused, sizes
//! stay within 1..=1000, and a token a request issues reads back to the last
//! key of its page under the same parameters only.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rolekeeper::domain::paging::{MAX_PAGE_SIZE, PageRequest};

fuzz_target!(|input: (i32, &str, Vec<String>, Vec<String>)| {
    let (page_size, token, params, rows) = input;
    let params: Vec<&str> = params.iter().map(String::as_str).collect();
    let Ok(request) = PageRequest::parse(page_size, token, &params) else {
        return;
    };
    assert!(page_size >= 0, "a negative page size was accepted");
    assert!((1..=MAX_PAGE_SIZE).contains(&request.size));
    let limit = usize::try_from(request.fetch_limit()).unwrap_or(usize::MAX);
    let fetched: Vec<String> = rows.into_iter().take(limit).collect();
    let size = usize::try_from(request.size).unwrap_or(usize::MAX);
    let page = request.page(fetched.clone(), String::clone);
    if page.next_page_token.is_empty() {
        assert!(fetched.len() <= size);
        return;
    }
    let next = PageRequest::parse(page_size, &page.next_page_token, &params)
        .expect("a request accepts its own token");
    assert_eq!(next.after.as_deref(), Some(fetched[size - 1].as_str()));
    let mut other = params.clone();
    other.push("another parameter");
    assert!(PageRequest::parse(page_size, &page.next_page_token, &other).is_err());
});
