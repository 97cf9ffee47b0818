/// @file
/// ClientOptions, everything a Client is configured with. options_from_environment, which reads them
/// from the environment, is in `<perplexity/environment.hpp>`.
#pragma once

#include <perplexity/events.hpp>
#include <perplexity/ledger.hpp>
#include <perplexity/pacing.hpp>
#include <perplexity/poll.hpp>
#include <perplexity/retry.hpp>
#include <perplexity/version.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace perplexity {

/// The two path families the API serves; both reach the same jobs.
namespace paths {
/// What the official SDK uses. The default.
inline constexpr std::string_view async_chat_completions = "/async/chat/completions";
/// What the current documentation uses.
inline constexpr std::string_view v1_async_sonar = "/v1/async/sonar";
/// The Agent API's responses (`create_response`, `get_response`, ...).
inline constexpr std::string_view v1_responses = "/v1/responses";
}  // namespace paths

/// How a Client reaches the API. Plain data with documented defaults; copy and adjust. The Client
/// copies it at construction and checks it then: unusable options make every operation fail with
/// `ErrorKind::invalid_argument` (see Client::configuration_error), nothing throws.
struct ClientOptions {
    /// Scheme, host, optional port and optional path of the API (no user information, query or
    /// fragment). `http://` is accepted only for loopback hosts (localhost, 127.0.0.0/8, ::1) unless
    /// `allow_insecure_http` is set.
    std::string base_url = "https://api.perplexity.ai";
    /// Sent as `Authorization: Bearer <api_key>`. Required; no spaces or control characters. Never
    /// printed and never part of an Error or an Event.
    std::string api_key{};
    /// The path family, appended to the base URL's path; starts with '/'. See `paths`.
    std::string path_prefix = std::string(paths::async_chat_completions);
    /// The Agent API's path, appended to the base URL's path; starts with '/'.
    std::string responses_path = std::string(paths::v1_responses);

    /// A PEM file of trusted certificate authorities, read once when the Client is constructed. When
    /// none of `ca_file`, `ca_pem` and `ca_directory` is set, the system's default trust store is used;
    /// when any is set, only what they name is trusted (they add up, the system store is not added).
    std::string ca_file{};
    /// PEM text of trusted certificate authorities, for CAs kept in memory rather than in a file.
    std::string ca_pem{};
    /// A directory of hashed PEM certificates (as `c_rehash` makes), used in addition to `ca_file` and
    /// `ca_pem`; looked up during each handshake.
    std::string ca_directory{};
    /// Allows plain http:// to hosts that are not loopback. Off: the key would travel in clear text.
    bool allow_insecure_http = false;

    /// Resolving the host and establishing the TCP connection, per connection opened.
    std::chrono::milliseconds connect_timeout = std::chrono::seconds(10);
    /// The TLS handshake, once connected.
    std::chrono::milliseconds tls_handshake_timeout = std::chrono::seconds(10);
    /// Writing one request and reading its whole response, per attempt: a server that drips bytes cannot
    /// stretch it. Inside `wait` and `run`, also capped by the time left before the deadline.
    std::chrono::milliseconds request_timeout = std::chrono::seconds(60);

    /// Responses whose body is larger, in bytes, are refused (a completed deep-research job is well
    /// under 1 MiB): from `Content-Length` before reading, or as a chunked body grows past it.
    std::size_t max_response_body = 8 * 1024 * 1024;
    /// Responses whose header block is larger, in bytes, are refused.
    std::size_t max_response_header = 64 * 1024;

    /// The `User-Agent` header; no control characters.
    std::string user_agent = std::string("perplexity-async/") + version_string;

    /// The most connections a Client opens to the API at once. A request that finds them all busy
    /// waits for one, in arrival order. Must be at least 1.
    std::size_t max_connections = 16;
    /// An idle keep-alive connection is closed after this long unused (before a server or proxy is
    /// likely to drop it). Enforced while the Client has operations in progress, and otherwise when
    /// the next one starts.
    std::chrono::milliseconds idle_connection_timeout = std::chrono::seconds(30);

    /// How every single request (create, get, list) is retried.
    RetryPolicy retry{};
    /// How `wait` and `run` poll, and their overall deadline; WaitOptions::poll overrides it per call.
    PollPolicy poll{};
    /// Spaces creates evenly at this many per minute, client-wide, so a batch is paced instead of
    /// collecting 429s. 0 (the default) turns spacing off. `create_rate_for_tier(n)` gives the API's
    /// limit for usage tier n. Independently of this, a 429 pauses every request of the same kind.
    unsigned create_requests_per_minute = 0;

    /// The create rate shared by a fleet of processes on one account (see SharedCreatePace); none by
    /// default. When set, every create attempt takes its slot from it (create_requests_per_minute then
    /// spaces nothing), and a 429 on a create pauses the whole fleet's creates, not only this Client's.
    /// A slot that cannot be taken (the database is out of reach) fails the create with an
    /// `ErrorKind::ledger` Error before it is sent; with a ledger, its entry stays pending for `resume`.
    std::shared_ptr<SharedCreatePace> shared_create_pace{};

    /// Sees every request, response, failure, retry and job status change, e.g. to route them to your
    /// logger (`event_logger` writes them as lines). Empty (the default) costs nothing. See
    /// EventHandler for when it is called and what it may do.
    EventHandler on_event{};

    /// Where `run` and `run_response` record their jobs, so that none is lost or created twice across
    /// a crash or a restart (see `Client::resume`); none by default. The intent of a create is recorded
    /// before it is sent, and when it cannot be, the create is not sent. Share one ledger between the
    /// Clients of one process; `open_sqlite_ledger` (`<perplexity/sqlite_ledger.hpp>`) opens a file.
    std::shared_ptr<Ledger> ledger{};
};

}  // namespace perplexity
