//! Paged List RPCs (ListVolumes, ListSnapshots): the paging flags, following `next_token` from
//! page to page, the guard against a plugin that hands back the token it was given, and the
//! `next_token:` line under a table.

use std::fmt::Debug;
use std::future::Future;

use clap::Args;
use csi_proto::v1::{ListSnapshotsResponse, ListVolumesResponse};

use super::{CliError, Session};
use crate::connect::Client;

/// A List response: entries and the token of the page after them.
pub(crate) trait Paged: Default {
    /// The token of the next page; empty on the last.
    fn next_token(&self) -> &str;
    /// Appends `page`'s entries and takes its `next_token`.
    fn append(&mut self, page: Self);
}

/// `impl Paged` for List responses: each has `entries` and `next_token`.
macro_rules! paged {
    ($($response:ty),*) => {$(
        impl Paged for $response {
            fn next_token(&self) -> &str {
                &self.next_token
            }

            fn append(&mut self, page: Self) {
                self.entries.extend(page.entries);
                self.next_token = page.next_token;
            }
        }
    )*};
}

paged!(ListVolumesResponse, ListSnapshotsResponse);

/// The paging flags of a List command.
#[derive(Args)]
pub(crate) struct PageArgs {
    /// At most this many entries per page (0: the plugin decides)
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_entries: i32,
    /// Continue from this next_token of an earlier page
    #[arg(long, default_value = "", value_name = "TOKEN")]
    pub starting_token: String,
    /// Follow next_token until the last page and print all entries as one response
    #[arg(long)]
    pub all: bool,
}

/// Sends `request(token)` for the page at `start`; with `all`, follows `next_token` to the last
/// page. `send` is the RPC (`send!(controller, list_volumes)`). Returns the entries of every page
/// fetched as one response, with the last page's `next_token`.
pub(crate) async fn fetch<Req, Resp, F, Fut>(
    session: &mut Session<'_>,
    start: &str,
    all: bool,
    request: impl Fn(String) -> Req,
    send: F,
) -> Result<Resp, CliError>
where
    Req: Debug,
    Resp: Paged,
    F: Fn(Client, tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
{
    let mut pages = Resp::default();
    let mut token = start.to_string();
    loop {
        let page = session.call(request(token.clone()), &send).await?;
        pages.append(page);
        if !all || pages.next_token().is_empty() {
            break;
        }
        next_page(&token, pages.next_token())?;
        token = pages.next_token().to_string();
    }
    Ok(pages)
}

/// Fails when a plugin hands back the token it was given (it would page forever).
pub(crate) fn next_page(current: &str, next: &str) -> Result<(), CliError> {
    if next == current {
        return Err(CliError::Usage(format!(
            "plugin returned next_token {next:?} again; stopping"
        )));
    }
    Ok(())
}

/// The line under a table that says where the next page starts; empty on the last page.
pub(crate) fn next_token_line(token: &str) -> String {
    if token.is_empty() {
        String::new()
    } else {
        format!("next_token: {token}\n")
    }
}

/// One page of a list RPC as a table (`row` makes the cells of an entry), with the line under it
/// that says where the next page starts.
pub(crate) fn page_table<E>(
    header: &[&str],
    entries: &[E],
    row: impl Fn(&E) -> Vec<String>,
    next_token: &str,
) -> String {
    let rows: Vec<Vec<String>> = entries.iter().map(row).collect();
    crate::render::table(header, &rows) + &next_token_line(next_token)
}
