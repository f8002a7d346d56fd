//! The rule expression parser (rulesrv conditions, virtual points): any text parses or fails at
//! a column inside the text, and evaluation never panics.

use voltage_core::expr;

pub fn check(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    match expr::parse(src) {
        Err(e) => {
            let chars = src.len();
            assert!(
                e.column >= 1 && e.column <= chars + 1,
                "column {} of {chars}: {}",
                e.column,
                e.message
            );
            assert!(!e.message.is_empty());
        }
        Ok(x) => {
            let mut refs = Vec::new();
            x.points(&mut refs);
            // Every point reference prints as text that parses back to the same reference.
            for r in &refs {
                let text = r.to_string();
                let again = expr::parse(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
                let mut back = Vec::new();
                again.points(&mut back);
                assert_eq!(back, vec![r.clone()], "{text:?}");
            }
            let _ = x.eval(&|_| Some(1.0));
            let _ = x.eval(&|_| Some(f64::NAN));
            let _ = x.eval(&|_| None);
        }
    }
}
