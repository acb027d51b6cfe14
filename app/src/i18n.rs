//! Translation: binds the text domain and fills named placeholders in translated strings.
//!
//! Strings are marked with [`gettext`], [`ngettext`], [`i18n_f`] and [`ni18n_f`]; `po/update-pot.sh`
//! extracts exactly these keywords. Placeholders are named (`{generation}`) so translators may
//! reorder them freely.

use crate::config;
pub use gettextrs::{gettext, ngettext};

/// Binds the text domain. Failures only cost the translations, so they are reported on stderr
/// and the app starts in English. The locale itself is set from the environment by GTK's
/// initialisation (`setlocale(LC_ALL, "")`), which happens before the first string is translated.
pub fn init() {
    let dir = config::locale_dir();
    if let Err(e) = gettextrs::bindtextdomain(config::GETTEXT_PACKAGE, dir.as_path()) {
        eprintln!(
            "palisade: cannot bind translations in {}: {e}",
            dir.display()
        );
    }
    if let Err(e) = gettextrs::bind_textdomain_codeset(config::GETTEXT_PACKAGE, "UTF-8") {
        eprintln!("palisade: cannot set the translations' encoding: {e}");
    }
    if let Err(e) = gettextrs::textdomain(config::GETTEXT_PACKAGE) {
        eprintln!("palisade: cannot select the text domain: {e}");
    }
}

/// Translates `msgid` and replaces each `{name}` with its value from `args`.
pub fn i18n_f(msgid: &str, args: &[(&str, &str)]) -> String {
    fill(&gettext(msgid), args)
}

/// Translates a message with a plural form chosen by `n`, then fills its placeholders.
pub fn ni18n_f(singular: &str, plural: &str, n: u32, args: &[(&str, &str)]) -> String {
    fill(&ngettext(singular, plural, n), args)
}

/// Replaces `{name}` placeholders in one pass, so a value that itself contains braces is never
/// expanded again; unknown placeholders stay as they are.
fn fill(template: &str, args: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            let name = &after[..close];
            args.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v, close))
        });
        match value {
            Some((v, close)) => {
                out.push_str(v);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::fill;

    #[test]
    fn fills_named_placeholders_once() {
        assert_eq!(
            fill("{a} and {b}", &[("b", "{a}"), ("a", "x")]),
            "x and {a}"
        );
        assert_eq!(fill("{unknown} {", &[("a", "x")]), "{unknown} {");
        assert_eq!(fill("no placeholders", &[]), "no placeholders");
    }
}
