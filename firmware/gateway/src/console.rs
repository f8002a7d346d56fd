//! The web console: `GET /` (the HTML shell) and `GET /console/{file}` (ES modules, CSS), the
//! files of `firmware/gateway/console/` embedded in the binary, so a controller serves its own
//! console from flash with no CDN, no node at build time and nothing to install.
//!
//! `build.rs` gzips every file once, at build time; a client that accepts gzip gets those bytes
//! (`Content-Encoding: gzip`), any other the raw ones. Every answer carries an ETag (a hash of
//! the file) and `Cache-Control: no-cache`: the browser keeps its copy but asks each time, and
//! after a firmware update a changed file is fetched again at once (304 otherwise).
//! The console reads the API with the user's bearer token; the files themselves are open.

use crate::Resp;
use warp::http::{header, HeaderMap, HeaderValue, StatusCode};

/// One embedded file.
pub(crate) struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub raw: &'static [u8],
    pub gzip: &'static [u8],
    pub etag: &'static str,
}

pub(crate) static ASSETS: &[Asset] = include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));

/// The page the browser opens; it loads the rest from `/console/`.
pub(crate) const INDEX: &str = "index.html";

pub(crate) fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|enc| {
            let mut parts = enc.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// Answers `GET /` (`name` = [`INDEX`]) or `GET /console/{name}`.
pub(crate) fn serve(name: &str, headers: &HeaderMap, head: bool) -> Resp {
    let Some(a) = find(name) else {
        return crate::reply(voltage_http::error(
            StatusCode::NOT_FOUND,
            format!("the console has no file {name:?}"),
        ));
    };
    let mut r = Resp::new(Default::default());
    let h = r.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_static(a.etag));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == a.etag || t.trim() == "*"));
    if fresh {
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        return r;
    }
    let body: &'static [u8] = if accepts_gzip(headers) {
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        a.gzip
    } else {
        a.raw
    };
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    if !head {
        *r.body_mut() = body.into();
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::io::Read;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    async fn body(r: Resp) -> Vec<u8> {
        r.into_body().collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn files_have_their_content_type_and_gzip_only_when_accepted() {
        for (name, ct) in [
            ("index.html", "text/html; charset=utf-8"),
            ("app.js", "text/javascript; charset=utf-8"),
            ("chart.js", "text/javascript; charset=utf-8"),
            ("style.css", "text/css; charset=utf-8"),
        ] {
            let r = serve(
                name,
                &headers(&[("accept-encoding", "gzip, deflate, br")]),
                false,
            );
            assert_eq!(r.status(), StatusCode::OK, "{name}");
            assert_eq!(r.headers()[header::CONTENT_TYPE], ct, "{name}");
            assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip", "{name}");
            assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
            let gz = body(r).await;
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut plain)
                .unwrap();
            assert_eq!(plain, find(name).unwrap().raw, "{name} round-trips");
            let r = serve(
                name,
                &headers(&[("accept-encoding", "gzip;q=0, identity")]),
                false,
            );
            assert!(
                r.headers().get(header::CONTENT_ENCODING).is_none(),
                "{name}"
            );
            assert_eq!(body(r).await, find(name).unwrap().raw);
        }
        let html = String::from_utf8(find(INDEX).unwrap().raw.to_vec()).unwrap();
        assert!(html.contains("console/app.js"), "{html}");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external resources"
        );
    }

    #[tokio::test]
    async fn an_unknown_file_is_a_json_404_and_a_known_etag_a_304() {
        let r = serve("nope.js", &HeaderMap::new(), false);
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let v: serde_json::Value = serde_json::from_slice(&body(r).await).unwrap();
        assert_eq!(v["error"]["code"], 404);
        assert!(serve("../Cargo.toml", &HeaderMap::new(), false).status() == StatusCode::NOT_FOUND);
        let etag = find("app.js").unwrap().etag;
        let r = serve("app.js", &headers(&[("if-none-match", etag)]), false);
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert!(body(r).await.is_empty());
        let r = serve("app.js", &headers(&[("if-none-match", "\"other\"")]), false);
        assert_eq!(r.status(), StatusCode::OK);
        let etags: std::collections::HashSet<_> = ASSETS.iter().map(|a| a.etag).collect();
        assert_eq!(etags.len(), ASSETS.len(), "one ETag per file");
    }

    /// The whole console, as a browser fetches it, stays far below the 300 KB budget.
    #[test]
    fn the_whole_console_fits_the_transfer_budget() {
        let gz: usize = ASSETS.iter().map(|a| a.gzip.len()).sum();
        let raw: usize = ASSETS.iter().map(|a| a.raw.len()).sum();
        println!(
            "console: {} files, {raw} bytes raw, {gz} bytes gzipped",
            ASSETS.len()
        );
        assert!(ASSETS.len() >= 4, "{} files", ASSETS.len());
        assert!(gz < 300 * 1024, "{gz} bytes gzipped is over the budget");
        assert!(gz < 60 * 1024, "{gz} bytes gzipped: the aim is ~30 KB");
        assert!(gz < raw, "gzip made it smaller");
    }
}
