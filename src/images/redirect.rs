//! Which redirects a pull follows. A chain that has been on https stays on https: a redirect to
//! plain http from there is refused as a downgrade (naming both URLs), whoever sends it. A
//! catalog URL that is http itself was the user's choice, so its chain may stay on http (or move
//! up to https). Only http and https are followed, at most [`MAX_REDIRECTS`] hops, as reqwest's
//! default policy does.

use reqwest::Url;
use reqwest::redirect::{Attempt, Policy};

/// As many hops as reqwest's default policy allows.
pub const MAX_REDIRECTS: usize = 10;

/// A redirect a pull does not follow.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RedirectRefused {
    #[error(
        "refused the redirect from {from} to {to}: it leaves https for plain http (a downgrade); \
         use a mirror that stays on https, or put the http URL in the catalog if you mean it"
    )]
    Downgrade { from: String, to: String },
    #[error("refused the redirect from {from} to {to}: only http and https are followed")]
    Scheme { from: String, to: String },
    #[error("stopped after {MAX_REDIRECTS} redirects (from {from})")]
    TooMany { from: String },
}

/// Whether to follow a redirect to `next`, after the URLs of the chain so far (`previous`, the
/// first the one asked for; never empty when reqwest asks).
pub fn judge(previous: &[Url], next: &Url) -> Result<(), RedirectRefused> {
    let Some(from) = previous.last() else {
        return Ok(());
    };
    let refused =
        |make: fn(String, String) -> RedirectRefused| Err(make(from.to_string(), next.to_string()));
    if previous.len() > MAX_REDIRECTS {
        return Err(RedirectRefused::TooMany {
            from: previous[0].to_string(),
        });
    }
    match next.scheme() {
        "https" => Ok(()),
        "http" if previous.iter().any(|u| u.scheme() == "https") => {
            refused(|from, to| RedirectRefused::Downgrade { from, to })
        }
        "http" => Ok(()),
        _ => refused(|from, to| RedirectRefused::Scheme { from, to }),
    }
}

/// reqwest's policy that applies [`judge`].
pub fn policy() -> Policy {
    Policy::custom(
        |attempt: Attempt| match judge(attempt.previous(), attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(refused) => attempt.error(refused),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(list: &[&str]) -> Vec<Url> {
        list.iter().map(|u| Url::parse(u).unwrap()).collect()
    }

    fn url(u: &str) -> Url {
        Url::parse(u).unwrap()
    }

    #[test]
    fn https_never_goes_down_to_http() {
        let e = judge(
            &urls(&["https://dl.example/f.qcow2"]),
            &url("http://mirror.example/f.qcow2"),
        )
        .unwrap_err();
        assert!(matches!(e, RedirectRefused::Downgrade { .. }));
        let text = e.to_string();
        assert!(text.contains("https://dl.example/f.qcow2"), "{text}");
        assert!(text.contains("http://mirror.example/f.qcow2"), "{text}");
        // Also later in the chain, and after an http catalog URL that moved up to https.
        for chain in [
            &["https://a.example/", "https://b.example/"][..],
            &["http://a.example/", "https://b.example/"][..],
        ] {
            assert!(matches!(
                judge(&urls(chain), &url("http://c.example/")),
                Err(RedirectRefused::Downgrade { .. })
            ));
        }
    }

    #[test]
    fn http_the_user_chose_may_stay_http_and_anything_may_go_up() {
        assert_eq!(
            judge(&urls(&["http://a.example/"]), &url("http://b.example/")),
            Ok(())
        );
        assert_eq!(
            judge(
                &urls(&["http://a.example/", "http://b.example/"]),
                &url("https://c.example/")
            ),
            Ok(())
        );
        assert_eq!(
            judge(&urls(&["https://a.example/"]), &url("https://b.example/")),
            Ok(())
        );
    }

    #[test]
    fn other_schemes_and_long_chains_are_refused() {
        for to in ["ftp://a.example/f", "file:///etc/passwd"] {
            assert!(matches!(
                judge(&urls(&["http://a.example/"]), &url(to)),
                Err(RedirectRefused::Scheme { .. })
            ));
        }
        let long: Vec<String> = (0..=MAX_REDIRECTS)
            .map(|i| format!("https://a.example/{i}"))
            .collect();
        let long: Vec<&str> = long.iter().map(String::as_str).collect();
        assert!(matches!(
            judge(&urls(&long), &url("https://b.example/")),
            Err(RedirectRefused::TooMany { .. })
        ));
        assert_eq!(
            judge(&urls(&long[..MAX_REDIRECTS]), &url("https://b.example/")),
            Ok(())
        );
    }
}
