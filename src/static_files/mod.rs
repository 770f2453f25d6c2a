//! Static files for every GET/HEAD that is not an event stream, so the page
//! that opens the `EventSource` can come from the same origin.
//!
//! Safety first: a request path is decoded segment by segment and refused if a
//! segment is `.`/`..`, hides a separator (`%2f`, `\`), a NUL, or is not UTF-8;
//! whatever is left is joined under the root and canonicalised, and the result
//! must still lie inside the canonical root, which also stops symlinks that
//! point outside. Dotfiles (`.env`, `.git/…`) are never served.

use crate::body::{plain, ResponseBody};
use file::FileStream;

pub mod file;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use percent_encoding::percent_decode_str;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

/// The directory static files are served from, resolved once at start-up.
#[derive(Debug, Clone)]
pub struct StaticRoot {
    root: PathBuf,
}

/// Why a request path maps to no file (public with [`decode_segments`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The path is malformed or tries to leave the root: 400.
    BadPath,
    /// Nothing servable there: 404.
    NotFound,
}

impl StaticRoot {
    /// Resolves `dir` to its canonical form; it must be an existing directory.
    pub fn new(dir: &Path) -> io::Result<Self> {
        let root = std::fs::canonicalize(dir)?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(StaticRoot { root })
    }

    /// Answers a GET or HEAD for `raw_path` (as sent, still percent-encoded).
    pub async fn serve(
        &self,
        method: &Method,
        raw_path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Response<ResponseBody> {
        let segments = match decode_segments(raw_path) {
            Ok(s) => s,
            Err(Refusal::BadPath) => return plain(StatusCode::BAD_REQUEST, "invalid path\n"),
            Err(Refusal::NotFound) => return plain(StatusCode::NOT_FOUND, "not found\n"),
        };
        let mut path = self.root.clone();
        path.extend(&segments);
        let mut file_path = match self.contain(&path).await {
            Some(p) => p,
            None => return plain(StatusCode::NOT_FOUND, "not found\n"),
        };
        let mut meta = match tokio::fs::metadata(&file_path).await {
            Ok(m) => m,
            Err(_) => return plain(StatusCode::NOT_FOUND, "not found\n"),
        };
        if meta.is_dir() {
            if !raw_path.ends_with('/') {
                // Relative links in an index page resolve against the directory.
                let mut location = format!("{raw_path}/");
                if let Some(q) = query {
                    location.push('?');
                    location.push_str(q);
                }
                return redirect(&location);
            }
            file_path = match self.contain(&file_path.join("index.html")).await {
                Some(p) => p,
                None => return plain(StatusCode::NOT_FOUND, "not found\n"),
            };
            meta = match tokio::fs::metadata(&file_path).await {
                Ok(m) => m,
                Err(_) => return plain(StatusCode::NOT_FOUND, "not found\n"),
            };
        }
        if !meta.is_file() {
            return plain(StatusCode::NOT_FOUND, "not found\n");
        }

        let modified = meta.modified().ok();
        if let (Some(mtime), Some(since)) = (modified, if_modified_since(headers)) {
            if truncate_to_secs(mtime) <= since {
                return Response::builder()
                    .status(StatusCode::NOT_MODIFIED)
                    .header(header::LAST_MODIFIED, httpdate::fmt_http_date(mtime))
                    .body(ResponseBody::Empty)
                    .expect("a StatusCode and an HTTP date always make a valid head");
            }
        }

        let len = meta.len();
        let mut response = Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, content_type(&file_path))
            .header(header::CONTENT_LENGTH, len)
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
            .header(header::CACHE_CONTROL, "no-cache");
        if let Some(mtime) = modified {
            response = response.header(header::LAST_MODIFIED, httpdate::fmt_http_date(mtime));
        }
        let body = if *method == Method::HEAD {
            ResponseBody::Empty
        } else {
            match tokio::fs::File::open(&file_path).await {
                Ok(file) => ResponseBody::File(FileStream::new(file, len)),
                Err(_) => return plain(StatusCode::NOT_FOUND, "not found\n"),
            }
        };
        response
            .body(body)
            .expect("valid parts only: StatusCode, mime_guess type, numbers, dates")
    }

    /// Canonicalises `path` and returns it only if it is still inside the root.
    async fn contain(&self, path: &Path) -> Option<PathBuf> {
        let real = tokio::fs::canonicalize(path).await.ok()?;
        real.starts_with(&self.root).then_some(real)
    }
}

/// Splits and percent-decodes a request path into plain file-name segments.
/// Public so the fuzz targets (`fuzz/`) can check it on arbitrary paths.
pub fn decode_segments(raw_path: &str) -> Result<Vec<String>, Refusal> {
    if !raw_path.starts_with('/') {
        return Err(Refusal::BadPath);
    }
    let mut segments = Vec::new();
    for raw in raw_path.split('/').filter(|s| !s.is_empty()) {
        let bytes: Vec<u8> = percent_decode_str(raw).collect();
        let segment = String::from_utf8(bytes).map_err(|_| Refusal::BadPath)?;
        if segment.contains(['/', '\\', '\0']) || segment == "." || segment == ".." {
            return Err(Refusal::BadPath);
        }
        // Exactly one normal component: no drive prefix, no root, nothing odd.
        let mut components = Path::new(&segment).components();
        match (components.next(), components.next()) {
            (Some(Component::Normal(_)), None) => {}
            _ => return Err(Refusal::BadPath),
        }
        if segment.starts_with('.') {
            return Err(Refusal::NotFound);
        }
        segments.push(segment);
    }
    Ok(segments)
}

fn content_type(path: &Path) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let textual = mime.type_() == mime_guess::mime::TEXT
        || matches!(
            mime.essence_str(),
            "application/javascript" | "application/json" | "image/svg+xml"
        );
    if textual {
        format!("{}; charset=utf-8", mime.essence_str())
    } else {
        mime.essence_str().to_owned()
    }
}

fn if_modified_since(headers: &HeaderMap) -> Option<SystemTime> {
    let value = headers.get(header::IF_MODIFIED_SINCE)?.to_str().ok()?;
    httpdate::parse_http_date(value).ok()
}

fn truncate_to_secs(t: SystemTime) -> SystemTime {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

fn redirect(location: &str) -> Response<ResponseBody> {
    match HeaderValue::from_str(location) {
        Ok(value) => Response::builder()
            .status(StatusCode::MOVED_PERMANENTLY)
            .header(header::LOCATION, value)
            .header(header::CONTENT_LENGTH, 0)
            .body(ResponseBody::Empty)
            .expect("a StatusCode, a HeaderValue checked above and a length make a valid head"),
        Err(_) => plain(StatusCode::BAD_REQUEST, "invalid path\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_decode_to_segments() {
        assert_eq!(decode_segments("/").unwrap(), Vec::<String>::new());
        assert_eq!(
            decode_segments("/a/b%20c.html").unwrap(),
            vec!["a".to_owned(), "b c.html".to_owned()]
        );
        assert_eq!(decode_segments("//a//b").unwrap(), vec!["a", "b"]);
    }

    #[test]
    fn traversal_and_hidden_separators_are_refused() {
        for bad in [
            "/../etc/passwd",
            "/a/../../b",
            "/%2e%2e/x",
            "/%2E%2E/x",
            "/a%2f..%2f..%2fb",
            "/a%5c..%5cb",
            "/a%00b",
            "/./a",
            "/%ff",
            "relative",
        ] {
            assert_eq!(decode_segments(bad), Err(Refusal::BadPath), "{bad}");
        }
    }

    #[test]
    fn dotfiles_are_not_found() {
        assert_eq!(decode_segments("/.env"), Err(Refusal::NotFound));
        assert_eq!(decode_segments("/.git/config"), Err(Refusal::NotFound));
    }

    #[test]
    fn text_types_carry_a_charset() {
        assert_eq!(
            content_type(Path::new("a.html")),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("a.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("a.png")), "image/png");
        assert_eq!(
            content_type(Path::new("a.unknownext")),
            "application/octet-stream"
        );
    }
}
