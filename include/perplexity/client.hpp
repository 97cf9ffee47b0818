/// @file
/// Client, the operations on async chat completion jobs.
#pragma once

#include <perplexity/detail/connection.hpp>
#include <perplexity/detail/connection_pool.hpp>
#include <perplexity/detail/error_body.hpp>
#include <perplexity/detail/pacer.hpp>
#include <perplexity/detail/response.hpp>
#include <perplexity/detail/url.hpp>
#include <perplexity/detail/uuid.hpp>
#include <perplexity/error.hpp>
#include <perplexity/events.hpp>
#include <perplexity/expected.hpp>
#include <perplexity/job.hpp>
#include <perplexity/json.hpp>
#include <perplexity/options.hpp>
#include <perplexity/poll.hpp>
#include <perplexity/retry.hpp>
#include <perplexity/wait.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace perplexity {

/// A client of the async chat completions API.
///
/// Operations: `create`, `get`, `list`, `wait` and `run` each return a lazy
/// `asio::awaitable<expected<T, Error>>` that owns copies of its arguments; nothing happens until it is
/// awaited (`co_await`) or started with `asio::co_spawn`, which also gives it any completion token
/// (a callback, `asio::use_future`, ...).
///
/// Executor and threads: a Client belongs to one executor and is not thread-safe. Await or co_spawn
/// its operations on that executor (`get_executor()`), call its other members there too, and emit
/// cancellation signals from there (e.g. through `asio::post(client.get_executor(), ...)`). On a
/// multi-threaded io_context, make the executor a strand. Clients share nothing: many of them, each on
/// its own strand, may run on one io_context served by many threads. Handlers (ClientOptions::on_event,
/// WaitOptions::on_progress and on_created) run on the Client's executor.
///
/// Lifetime: the Client must outlive every operation started on it, and the executor's execution
/// context (the io_context) must outlive the Client. Results and Errors are values that outlive both.
///
/// Connections: at most ClientOptions::max_connections are open; a request that finds them all busy
/// waits its turn in arrival order (bounded by its deadline, and cancellable). Idle keep-alive
/// connections are reused and closed after ClientOptions::idle_connection_timeout, by a timer that runs
/// only while an operation is in progress (so that io_context::run can return). A connection the
/// server closed while idle is noticed before use and replaced; a reused one that closes or resets before any
/// byte of an answer arrived is replaced and the request sent once more when that is safe (a get or a list,
/// or a create whose request provably never reached the server or that carries an idempotency key).
///
/// Errors: every operation returns `expected<T, Error>` and never throws for I/O, HTTP or decoding
/// failures. Bad options (an invalid base URL, an unreadable CA file, a missing API key) are reported
/// by every operation as `ErrorKind::invalid_argument`.
///
/// Cancellation: operations support terminal per-operation cancellation (a cancellation slot bound
/// with `asio::bind_cancellation_slot`, or the `||` of `asio::experimental::awaitable_operators`, e.g.
/// against a timer). It reaches every timer and socket, including a wait for a free connection, a
/// pacing wait and a sleep between polls. A cancelled operation returns `ErrorKind::cancelled`, closes
/// the connection it was using, and leaves the Client usable. Cancelling `wait` or `run` does not cancel
/// the job on the server (the API has no cancel).
class Client {
  public:
    /// The executor every operation of the Client runs on.
    using executor_type = boost::asio::any_io_executor;

    /// A Client on `executor` (a strand, if the io_context runs on several threads) with `options`.
    /// Checks the options and loads the trusted certificates (ClientOptions::ca_file, or the system
    /// store) here, synchronously; opens no connection. Unusable options do not throw: they are kept in
    /// configuration_error() and returned by every operation.
    Client(executor_type executor, ClientOptions options)
        : executor_(std::move(executor)),
          options_(std::move(options)),
          tls_context_(boost::asio::ssl::context::tls_client),
          pool_(executor_, options_.max_connections, options_.idle_connection_timeout) {
        configure();
        create_pacer_.set_rate(options_.create_requests_per_minute);
    }

    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    ~Client() = default;

    /// The executor given at construction.
    executor_type get_executor() const noexcept { return executor_; }
    /// The options as given at construction; valid as long as the Client.
    const ClientOptions& options() const noexcept { return options_; }

    /// Why the options are unusable, if they are (an `ErrorKind::invalid_argument` Error: bad base URL,
    /// no API key, an unreadable CA, ...); every operation then fails with this error.
    const std::optional<Error>& configuration_error() const noexcept { return configuration_error_; }

    /// Connections kept open for reuse right now.
    std::size_t idle_connection_count() const noexcept { return pool_.idle_count(); }
    /// Connections open right now: idle, in use or being opened; never more than
    /// ClientOptions::max_connections.
    std::size_t open_connection_count() const noexcept { return pool_.open_count(); }
    /// Closes the idle connections now, e.g. before a long quiet period.
    void close_idle_connections() noexcept { pool_.close_idle(); }

    /// Submits a job. The returned Job is usually CREATED.
    ///
    /// With an `idempotency_key`, the API answers a repeated create with the job the key first created,
    /// so the request is retried (per ClientOptions::retry) after any retryable failure: reuse the same
    /// key for every attempt of the same job. Without one, it is retried only when it provably never
    /// reached the server or was refused with 429 or 408 (`x-should-retry: true` does not change that);
    /// otherwise the Error says that a job may have been created.
    ///
    /// Paced by ClientOptions::create_requests_per_minute and by any 429 pause; not bounded by a
    /// deadline (each attempt is bounded by the ClientOptions timeouts). Errors: `invalid_argument`
    /// (empty model or messages, a message without a role, max_tokens <= 0, an empty key), and any kind
    /// a request can fail with (transport, tls, timeout, cancelled, protocol, http_status,
    /// rate_limited, decode). A failed create has no job id unless the answer named one: when the
    /// outcome is unknown, list recent jobs or create again with the same key.
    boost::asio::awaitable<expected<Job, Error>> create(
        ChatRequest request, std::optional<std::string> idempotency_key = std::nullopt) {
        return shielded(create_job(std::move(request), std::move(idempotency_key)));
    }

    /// Fetches a job by id, retrying per ClientOptions::retry. An unknown or expired id is
    /// `ErrorKind::http_status` with status 404; an answer about another job is `ErrorKind::decode`; an
    /// empty id is `ErrorKind::invalid_argument`. Every other Error carries `job_id`.
    boost::asio::awaitable<expected<Job, Error>> get(std::string job_id) {
        return shielded(get_job(std::move(job_id), no_deadline(), nullptr));
    }

    /// Fetches one page of the job list, newest first. `limit` is the page size (the API's default when
    /// not set; 0 is `ErrorKind::invalid_argument`); `next_token` comes from the previous page. Retried
    /// per ClientOptions::retry.
    boost::asio::awaitable<expected<JobPage, Error>> list(
        std::optional<std::size_t> limit = std::nullopt,
        std::optional<std::string> next_token = std::nullopt) {
        return shielded(list_jobs(limit, std::move(next_token)));
    }

    /// Polls a job until it is COMPLETED (the result) or FAILED (an `ErrorKind::job_failed` Error carrying
    /// the job and its error_message), pacing polls per the PollPolicy (`options.poll`, else
    /// ClientOptions::poll). When the policy's deadline passes first, or a poll's retry would end after
    /// it (the poll's failure is then quoted in the message), the result is an
    /// `ErrorKind::wait_deadline` Error with the job id and the job as last seen: the job may still
    /// complete. A cancelled wait carries the job id too, and the job as last seen. Any other Error (a
    /// poll that failed after its retries, e.g. a 404) carries the job id and ends the wait. A job
    /// reported COMPLETED without its `response` is an `ErrorKind::decode` Error (at `$.response`)
    /// carrying the job, so a successful result always has its answer.
    ///
    /// The first poll is made at once; polls share a pacing state with `get` and `list` (a 429 pauses
    /// them all). `options.on_progress` sees each poll, status change, retry and sleep.
    boost::asio::awaitable<expected<Job, Error>> wait(std::string job_id, WaitOptions options = {}) {
        return wait_job(std::move(job_id), std::move(options));
    }

    /// Creates a job and waits for it: `create` with an idempotency key (a fresh UUID v4 unless
    /// `options.idempotency_key` gives one) reused on every retry, so a job is never created twice, then
    /// `wait`. The PollPolicy's deadline covers both. `options.on_created` sees the job before the first
    /// poll. When the create fails with its outcome unknown (a timeout, a transport failure, a
    /// cancellation or a 429 after the retries), the Error's message names the key to pass as
    /// `WaitOptions::idempotency_key` to a later `run` to pick the job up; once the job exists, every
    /// Error carries its id. Errors: those of `create` and of `wait`.
    boost::asio::awaitable<expected<Job, Error>> run(ChatRequest request, WaitOptions options = {}) {
        // On the heap, the request is freed once the create has been answered instead of staying in the
        // frame of the whole wait.
        return run_job(std::make_unique<ChatRequest>(std::move(request)), std::move(options));
    }

  private:
    void configure() {
        auto invalid = [this](std::string message) {
            configuration_error_ = Error{.kind = ErrorKind::invalid_argument, .message = std::move(message)};
        };
        // These go onto the request line and into header lines as they are.
        const auto has_control = [](std::string_view text, bool space_too) {
            return std::any_of(text.begin(), text.end(), [space_too](char c) {
                const auto byte = static_cast<unsigned char>(c);
                return byte < 0x20 || byte == 0x7f || (space_too && byte == ' ');
            });
        };
        if (has_control(options_.base_url, true)) {
            return invalid("ClientOptions::base_url contains a space or a control character");
        }
        if (has_control(options_.path_prefix, true)) {
            return invalid("ClientOptions::path_prefix contains a space or a control character");
        }
        if (has_control(options_.user_agent, false)) {
            return invalid("ClientOptions::user_agent contains a control character");
        }
        auto origin = detail::parse_base_url(options_.base_url, options_.allow_insecure_http);
        if (!origin) {
            configuration_error_ = std::move(origin).error();
            return;
        }
        origin_ = std::move(*origin);
        if (options_.api_key.empty()) {
            return invalid(
                "no API key: set ClientOptions::api_key (options_from_environment reads PERPLEXITY_API_KEY)");
        }
        if (has_control(options_.api_key, true)) {
            return invalid("the API key contains a space, a line break or another control character");
        }
        if (options_.max_connections == 0) {
            return invalid("ClientOptions::max_connections must be at least 1");
        }
        if (!options_.path_prefix.starts_with('/')) {
            return invalid(
                "ClientOptions::path_prefix must start with '/', e.g. \"/async/chat/completions\"");
        }
        collection_target_ = origin_.base_path + options_.path_prefix;
        common_headers_ = "Host: " + origin_.host_header + "\r\nAuthorization: Bearer " + options_.api_key +
                          "\r\nAccept: application/json\r\nUser-Agent: " + options_.user_agent + "\r\n";
        if (!origin_.tls) {
            return;
        }
        boost::system::error_code ec;
        // Idle connections then hold no read or write buffers: with many of them, that is most of
        // their memory.
        SSL_CTX_set_mode(tls_context_.native_handle(), SSL_MODE_RELEASE_BUFFERS);
        // TLS 1.2 is the floor: older versions have known weaknesses and the API does not need them.
        SSL_CTX_set_min_proto_version(tls_context_.native_handle(), TLS1_2_VERSION);
        tls_context_.set_verify_mode(boost::asio::ssl::verify_peer, ec);
        if (options_.ca_file.empty() && options_.ca_pem.empty() && options_.ca_directory.empty()) {
            tls_context_.set_default_verify_paths(ec);
            if (ec) {
                return invalid("the system's trusted certificate store could not be loaded: " + ec.message());
            }
        }
        if (!options_.ca_file.empty()) {
            tls_context_.load_verify_file(options_.ca_file, ec);
            if (ec) {
                return invalid("ClientOptions::ca_file \"" + options_.ca_file +
                               "\" could not be loaded as PEM certificates: " + ec.message());
            }
        }
        if (!options_.ca_pem.empty()) {
            tls_context_.add_certificate_authority(boost::asio::buffer(options_.ca_pem), ec);
            if (ec) {
                return invalid("ClientOptions::ca_pem could not be read as PEM certificates: " +
                               ec.message());
            }
        }
        if (!options_.ca_directory.empty()) {
            tls_context_.add_verify_path(options_.ca_directory, ec);
            if (ec) {
                return invalid("ClientOptions::ca_directory \"" + options_.ca_directory +
                               "\" could not be used: " + ec.message());
            }
        }
    }

    const std::string& collection_target() const { return collection_target_; }

    detail::HttpRequest make_request(boost::beast::http::verb verb, std::string_view target,
                                     std::string_view body = {}) const {
        return detail::render_request(verb, target, common_headers_, body);
    }

    using Clock = std::chrono::steady_clock;
    enum class Endpoint { create, get, list };

    static Clock::time_point no_deadline() { return Clock::time_point::max(); }

    static std::chrono::milliseconds time_left(Clock::time_point deadline) {
        if (deadline == no_deadline()) {
            return std::chrono::milliseconds::max();
        }
        return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    }

    /// The HTTP request that creates a job, or (in `invalid`) why the ChatRequest cannot be sent.
    std::optional<detail::HttpRequest> create_request(const ChatRequest& request,
                                                      const std::optional<std::string>& idempotency_key,
                                                      std::optional<Error>& invalid) const {
        invalid = check_chat_request(request, idempotency_key);
        if (invalid) {
            return std::nullopt;
        }
        return make_request(boost::beast::http::verb::post, collection_target(),
                            boost::json::serialize(create_request_body(request, idempotency_key)));
    }

    /// The job a create's response describes, announced to ClientOptions::on_event.
    expected<Job, Error> created_job(expected<detail::HttpResponse, Error>& response) const {
        if (!response) {
            return unexpected(std::move(response).error());
        }
        auto job = read_response<Job>(*response, "job", std::nullopt);
        if (job && options_.on_event) {
            emit({.kind = Event::Kind::job_created, .job_id = job->id, .job = &*job});
        }
        return job;
    }

    boost::asio::awaitable<expected<Job, Error>> create_job(ChatRequest request,
                                                            std::optional<std::string> idempotency_key) {
        std::optional<Error> invalid;
        const std::optional<detail::HttpRequest> http_request =
            create_request(request, idempotency_key, invalid);
        if (!http_request) {
            co_return unexpected(std::move(*invalid));
        }
        auto response = co_await execute(Endpoint::create, *http_request, idempotency_key.has_value(),
                                         no_deadline(), nullptr, {});
        co_return created_job(response);
    }

    boost::asio::awaitable<expected<Job, Error>> get_job(std::string job_id, Clock::time_point deadline,
                                                         const WaitOptions* progress,
                                                         bool* gave_up_for_deadline = nullptr) {
        if (job_id.empty()) {
            co_return unexpected(
                Error{.kind = ErrorKind::invalid_argument, .message = "the job id is empty"});
        }
        const detail::HttpRequest http_request = make_request(
            boost::beast::http::verb::get, collection_target() + '/' + detail::percent_encode(job_id));
        auto response = co_await execute(Endpoint::get, http_request, true, deadline, progress, job_id,
                                         gave_up_for_deadline);
        if (!response) {
            Error error = std::move(response).error();
            error.job_id = job_id;
            co_return unexpected(std::move(error));
        }
        auto job = read_response<Job>(*response, "job", job_id);
        if (job && job->id != job_id) {
            co_return unexpected(Error{
                .kind = ErrorKind::decode,
                .message = "the API answered with job \"" + job->id + "\" when asked for \"" + job_id + "\"",
                .json_path = "$.id",
                .job_id = job_id});
        }
        co_return job;
    }

    boost::asio::awaitable<expected<JobPage, Error>> list_jobs(std::optional<std::size_t> limit,
                                                               std::optional<std::string> next_token) {
        if (limit && *limit == 0) {
            co_return unexpected(
                Error{.kind = ErrorKind::invalid_argument, .message = "the list limit must be at least 1"});
        }
        std::string target = collection_target();
        char separator = '?';
        if (limit) {
            target += separator + std::string("limit=") + std::to_string(*limit);
            separator = '&';
        }
        if (next_token) {
            target += separator + std::string("next_token=") + detail::percent_encode(*next_token);
        }
        const detail::HttpRequest http_request =
            make_request(boost::beast::http::verb::get, std::move(target));
        auto response = co_await execute(Endpoint::list, http_request, true, no_deadline(), nullptr, {});
        if (!response) {
            co_return unexpected(std::move(response).error());
        }
        co_return read_response<JobPage>(*response, "job list", std::nullopt);
    }

    // wait and run live as long as their job is being waited for, so a waiting job's frames are kept few
    // and small: wait_job or run_job (holding the Job, the policies and the options) and the poll loop
    // (holding the timer). Results travel through references, because every local of a coroutine gets
    // its own slot in the frame for the frame's whole life (GCC 12 does not overlap them), and the
    // short-lived coroutines of a create or a poll are gone while the job sleeps.

    boost::asio::awaitable<expected<Job, Error>> wait_job(std::string job_id, WaitOptions options) {
        const OperationInProgress in_progress(pool_);
        if (job_id.empty()) {
            co_return unexpected(
                Error{.kind = ErrorKind::invalid_argument, .message = "the job id is empty"});
        }
        const PollPolicy policy = options.poll.value_or(options_.poll);
        const auto deadline = Clock::now() + policy.deadline;
        std::optional<Job> latest;
        std::optional<Error> failure;
        co_await poll_until_final(job_id, latest, failure, policy, options, deadline);
        co_return outcome(job_id, latest, failure);
    }

    boost::asio::awaitable<expected<Job, Error>> run_job(std::unique_ptr<ChatRequest> request,
                                                         WaitOptions options) {
        const OperationInProgress in_progress(pool_);
        const PollPolicy policy = options.poll.value_or(options_.poll);
        const auto deadline = Clock::now() + policy.deadline;
        const std::string key = options.idempotency_key.value_or(detail::uuid_v4());
        std::optional<Job> latest;
        std::optional<Error> failure;
        co_await create_for_run(std::move(request), key, deadline, options, latest, failure);
        if (failure) {
            co_return unexpected(std::move(*failure));
        }
        const std::string job_id = latest->id;
        co_await poll_until_final(job_id, latest, failure, policy, options, deadline);
        co_return outcome(job_id, latest, failure);
    }

    static expected<Job, Error> outcome(const std::string& job_id, std::optional<Job>& latest,
                                        std::optional<Error>& failure) {
        if (failure) {
            if (!failure->job_id) {
                failure->job_id = job_id;
            }
            return unexpected(std::move(*failure));
        }
        return std::move(*latest);
    }

    /// The create of `run`: on success the job goes to `latest` and is announced; on failure `failure`
    /// says why, and names the key that picks the job up when it may exist.
    /// One coroutine, rather than create_job's, so that a job queued for a connection in a burst of
    /// runs holds one frame fewer.
    boost::asio::awaitable<void> create_for_run(std::unique_ptr<ChatRequest> request, const std::string& key,
                                                Clock::time_point deadline, const WaitOptions& options,
                                                std::optional<Job>& latest, std::optional<Error>& failure) {
        const std::optional<detail::HttpRequest> http_request = create_request(*request, key, failure);
        request.reset();
        if (!http_request) {
            co_return;
        }
        try {
            auto response = co_await execute(Endpoint::create, *http_request, true, deadline,
                                             options.on_progress ? &options : nullptr, {});
            settle_create(created_job(response), key, options, latest, failure);
        } catch (const boost::system::system_error& thrown) {
            settle_create(unexpected(thrown_error(thrown.code())), key, options, latest, failure);
        }
    }

    static void settle_create(expected<Job, Error> created, const std::string& key,
                              const WaitOptions& options, std::optional<Job>& latest,
                              std::optional<Error>& failure) {
        if (!created) {
            Error& error = failure.emplace(std::move(created).error());
            if (error.kind == ErrorKind::timeout || error.kind == ErrorKind::transport ||
                error.kind == ErrorKind::cancelled || error.kind == ErrorKind::rate_limited) {
                error.message +=
                    "; to pick up the job if it was created, run again with WaitOptions::idempotency_key = "
                    "\"" +
                    key + "\"";
            }
            return;
        }
        if (options.on_created) {
            options.on_created(*created);
        }
        notify(options, {.kind = ProgressEvent::Kind::created, .job_id = created->id, .job = &*created});
        notify(options,
               {.kind = ProgressEvent::Kind::status_changed, .job_id = created->id, .job = &*created});
        latest = std::move(*created);
    }

    /// The polling loop of wait and run. `latest` is the job as last seen (run starts with the create's
    /// answer; wait with nothing, so it polls at once) and stays so; it ends with `latest` COMPLETED, or
    /// with `failure` set.
    boost::asio::awaitable<void> poll_until_final(const std::string& job_id, std::optional<Job>& latest,
                                                  std::optional<Error>& failure, const PollPolicy& policy,
                                                  const WaitOptions& options, Clock::time_point deadline) {
        unsigned polls = 0;
        bool last_poll = false;
        // One timer for every sleep of the wait, in this frame: a sleep in a coroutine of its own would
        // add a frame per waiting job.
        boost::asio::steady_timer timer(executor_);
        try {
            for (;;) {
                if (latest) {
                    if (latest->status == JobStatus::completed) {
                        if (!latest->response) {
                            // A success without its answer would only fail later, in the caller's hands.
                            failure = completed_without_answer(*latest);
                        }
                        co_return;
                    }
                    if (latest->status == JobStatus::failed) {
                        failure = job_failed(*latest);
                        co_return;
                    }
                    if (last_poll) {
                        failure = deadline_passed(policy, job_id, latest);
                        co_return;
                    }
                    const PlannedSleep sleep = plan_sleep(policy, ++polls, deadline);
                    if (sleep.deadline_reached) {
                        failure = deadline_passed(policy, job_id, latest);
                        co_return;
                    }
                    notify_sleeping(options, job_id, polls, sleep.delay);
                    if (sleep.delay > std::chrono::milliseconds(0)) {
                        timer.expires_after(sleep.delay);
                        const auto [ec] =
                            co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
                        if (ec) {
                            failure = cancelled_while_waiting(ec, job_id, latest);
                            co_return;
                        }
                    }
                    last_poll = sleep.last_poll;
                }
                if (!co_await poll_once(job_id, latest, failure, policy, options, deadline)) {
                    co_return;
                }
            }
        } catch (const boost::system::system_error& thrown) {
            // Cancellation of the awaiting coroutine surfaces as an exception; it keeps the job.
            failure = cancelled_while_waiting(thrown.code(), job_id, latest);
        }
    }

    /// One poll: the answer becomes `latest` (unless it is stale), or the failure `failure`.
    boost::asio::awaitable<bool> poll_once(const std::string& job_id, std::optional<Job>& latest,
                                           std::optional<Error>& failure, const PollPolicy& policy,
                                           const WaitOptions& options, Clock::time_point deadline) {
        bool gave_up_for_deadline = false;
        auto fetched = co_await get_job(job_id, deadline, &options, &gave_up_for_deadline);
        if (!fetched) {
            // A poll that would have been retried but for the deadline ends the wait by its deadline;
            // the poll's own failure is kept in the message.
            if (fetched.error().kind != ErrorKind::cancelled &&
                (gave_up_for_deadline || time_left(deadline) <= std::chrono::milliseconds(0))) {
                failure = deadline_passed(policy, job_id, latest);
                failure->message += "; the last poll failed: " + to_string(fetched.error());
            } else {
                failure = std::move(fetched).error();
                if (latest) {
                    failure->job = std::make_shared<const Job>(*latest);
                }
            }
            co_return false;
        }
        notify(options, {.kind = ProgressEvent::Kind::polled, .job_id = job_id, .job = &*fetched});
        if (latest && is_earlier(fetched->status, latest->status)) {
            // Not news: a job never goes back, so keep what was already seen and poll again.
            co_return true;
        }
        if (!latest || latest->status != fetched->status || latest->status_text != fetched->status_text) {
            notify(options,
                   {.kind = ProgressEvent::Kind::status_changed, .job_id = job_id, .job = &*fetched});
            if (options_.on_event) {
                emit({.kind = Event::Kind::job_status_changed, .job_id = job_id, .job = &*fetched});
            }
        }
        latest = std::move(*fetched);
        co_return true;
    }

    PlannedSleep plan_sleep(const PollPolicy& policy, unsigned poll, Clock::time_point deadline) {
        return fit_to_deadline(poll_delay(policy, poll, random_unit()), time_left(deadline),
                               policy.last_poll_margin);
    }

    static void notify_sleeping(const WaitOptions& options, const std::string& job_id, unsigned poll,
                                std::chrono::milliseconds delay) {
        notify(options,
               {.kind = ProgressEvent::Kind::sleeping, .job_id = job_id, .attempt = poll, .delay = delay});
    }

    static Error cancelled_while_waiting(const boost::system::error_code& ec, const std::string& job_id,
                                         const std::optional<Job>& latest) {
        Error error = cancelled_error(ec);
        error.job_id = job_id;
        if (latest) {
            error.job = std::make_shared<const Job>(*latest);
        }
        return error;
    }

    static Error cancelled_error(const boost::system::error_code& ec) {
        const bool cancelled = ec == boost::asio::error::operation_aborted;
        return Error{.kind = cancelled ? ErrorKind::cancelled : ErrorKind::transport,
                     .message = cancelled ? "the operation was cancelled while waiting" : ec.message(),
                     .cause = ec};
    }

    static Error job_failed(const Job& job) {
        Error error{.kind = ErrorKind::job_failed,
                    .message = "job " + job.id + " failed",
                    .api_message = job.error_message.value_or(""),
                    .job_id = job.id};
        error.job = std::make_shared<const Job>(job);
        return error;
    }

    static Error completed_without_answer(const Job& job) {
        Error error{.kind = ErrorKind::decode,
                    .message = "job " + job.id + " is COMPLETED but the API sent no response with it",
                    .json_path = "$.response",
                    .job_id = job.id};
        error.job = std::make_shared<const Job>(job);
        return error;
    }

    static Error deadline_passed(const PollPolicy& policy, const std::string& job_id,
                                 const std::optional<Job>& latest) {
        const std::string status = latest ? latest->status_text : std::string("unknown");
        Error error{.kind = ErrorKind::wait_deadline,
                    .message = "the wait deadline of " + std::to_string(policy.deadline.count()) +
                               " ms (PollPolicy::deadline) passed while job " + job_id + " was " + status +
                               "; it may still complete: wait on it again later",
                    .job_id = job_id};
        if (latest) {
            error.job = std::make_shared<const Job>(*latest);
        }
        return error;
    }

    static void notify(const WaitOptions& options, const ProgressEvent& event) {
        if (options.on_progress) {
            options.on_progress(event);
        }
    }

    /// Sleeps; a non-zero result means the caller cancelled the sleep.
    boost::asio::awaitable<boost::system::error_code> sleep_for(std::chrono::milliseconds delay) {
        if (delay <= std::chrono::milliseconds(0)) {
            co_return boost::system::error_code{};
        }
        boost::asio::steady_timer timer(executor_, delay);
        auto [ec] = co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
        co_return ec;
    }

    double random_unit() { return std::uniform_real_distribution<double>(0.0, 1.0)(random_); }

    static std::uint64_t random_seed() {
        std::uint64_t seed = 0;
        detail::random_bytes(reinterpret_cast<unsigned char*>(&seed), sizeof seed);
        return seed;
    }

    struct SendFailure {
        Error error;
        /// Whether the server may have received the whole request (and so acted on it).
        bool may_have_arrived = false;
    };

    /// One request with pacing and retries: waits for its pacing slot, sends, and on a retryable failure
    /// waits (the server's hint, clamped, or the backoff) and sends again, until it succeeds, fails for
    /// good, or attempts or the deadline run out. A non-2xx response that is not retried is returned
    /// as a response, for read_response to turn into an Error.
    boost::asio::awaitable<expected<detail::HttpResponse, Error>> execute(
        Endpoint endpoint, const detail::HttpRequest& request, bool resend_safe, Clock::time_point deadline,
        const WaitOptions* progress, std::string_view job_id, bool* gave_up_for_deadline = nullptr) {
        if (configuration_error_) {
            co_return unexpected(*configuration_error_);
        }
        const RetryPolicy& policy = options_.retry;
        detail::Pacer& pacer = endpoint == Endpoint::create ? create_pacer_ : poll_pacer_;
        for (unsigned attempt = 1;; ++attempt) {
            const Clock::time_point slot = pacer.next_slot(Clock::now());
            if (slot >= deadline) {
                mark(gave_up_for_deadline);
                co_return unexpected(
                    Error{.kind = ErrorKind::timeout,
                          .message = "the deadline passes before pacing lets this request go"});
            }
            pacer.reserve(Clock::now());
            // Most requests need no pacing; awaiting a sleep of zero would still cost a coroutine frame.
            if (const auto wait = std::chrono::ceil<std::chrono::milliseconds>(slot - Clock::now());
                wait > std::chrono::milliseconds(0)) {
                if (const auto ec = co_await sleep_for(wait)) {
                    co_return unexpected(cancelled_error(ec));
                }
            }
            if (time_left(deadline) <= std::chrono::milliseconds(0)) {
                mark(gave_up_for_deadline);
                co_return unexpected(Error{.kind = ErrorKind::timeout, .message = "the deadline passed"});
            }
            Clock::time_point sent{};
            if (options_.on_event) {
                sent = Clock::now();
                emit(request_event(Event::Kind::request_sent, request, job_id, attempt));
            }
            auto outcome = co_await send(request, resend_safe, deadline);
            if (options_.on_event) {
                emit_outcome(request, job_id, attempt, sent, outcome);
            }

            std::optional<std::chrono::milliseconds> hint;
            bool retry = false;
            Error failure;
            if (outcome) {
                detail::HttpResponse& response = *outcome;
                const int status = static_cast<int>(response.result_int());
                if (status >= 200 && status < 300) {
                    co_return std::move(response);
                }
                hint = parse_retry_hint(response["retry-after-ms"], response["retry-after"],
                                        std::chrono::system_clock::now());
                // A 429 or 408 means the server did not act on the request, so even a create without a
                // key may go again; after other statuses only a request that is safe to repeat may,
                // whatever x-should-retry says: it can stop a retry, but not make a second job safe.
                const bool refused_unprocessed = status == 429 || status == 408;
                retry = (resend_safe || refused_unprocessed) &&
                        parse_should_retry(response["x-should-retry"]).value_or(is_retryable_status(status));
                if (status == 429) {
                    // Every request of this kind waits, not only this one: they share the limit.
                    pacer.pause_until(Clock::now() + retry_delay(policy, attempt, hint, 0.0));
                }
                if (!retry || attempt >= policy.max_attempts) {
                    co_return std::move(response);
                }
                failure = Error{.kind = status == 429 ? ErrorKind::rate_limited : ErrorKind::http_status,
                                .message = detail::describe_status(status),
                                .http_status = status};
            } else {
                failure = std::move(outcome.error().error);
                const bool transient =
                    failure.kind == ErrorKind::transport || failure.kind == ErrorKind::timeout;
                retry = transient && (resend_safe || !outcome.error().may_have_arrived);
                if (!retry || attempt >= policy.max_attempts) {
                    co_return unexpected(std::move(failure));
                }
            }
            const auto delay = retry_delay(policy, attempt, hint, random_unit());
            if (delay >= time_left(deadline)) {
                mark(gave_up_for_deadline);
                if (outcome) {
                    co_return std::move(*outcome);
                }
                co_return unexpected(std::move(failure));
            }
            if (progress) {
                notify(*progress, {.kind = ProgressEvent::Kind::retry_scheduled,
                                   .job_id = job_id,
                                   .error = &failure,
                                   .attempt = attempt,
                                   .delay = delay});
            }
            if (options_.on_event) {
                emit_retry(request, job_id, attempt, delay, failure);
            }
            if (const auto ec = co_await sleep_for(delay)) {
                co_return unexpected(cancelled_error(ec));
            }
        }
    }

    // Events are built outside the coroutines, so that they take no room in the frames.

    void emit_outcome(const detail::HttpRequest& request, std::string_view job_id, unsigned attempt,
                      Clock::time_point sent,
                      const expected<detail::HttpResponse, SendFailure>& outcome) const {
        Event event = request_event(outcome ? Event::Kind::response_received : Event::Kind::request_failed,
                                    request, job_id, attempt);
        event.latency = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - sent);
        if (outcome) {
            event.http_status = static_cast<int>(outcome->result_int());
        } else {
            event.error = &outcome.error().error;
        }
        emit(event);
    }

    void emit_retry(const detail::HttpRequest& request, std::string_view job_id, unsigned attempt,
                    std::chrono::milliseconds delay, const Error& failure) const {
        Event event = request_event(Event::Kind::retry_scheduled, request, job_id, attempt);
        event.delay = delay;
        event.error = &failure;
        emit(event);
    }

    static Event request_event(Event::Kind kind, const detail::HttpRequest& request, std::string_view job_id,
                               unsigned attempt) {
        return Event{.kind = kind,
                     .method = request.method_name(),
                     .target = request.target(),
                     .job_id = job_id,
                     .attempt = attempt};
    }

    static void mark(bool* flag) {
        if (flag != nullptr) {
            *flag = true;
        }
    }

    /// Hands an event to ClientOptions::on_event, which is set. What the handler throws is dropped:
    /// observing must not change the outcome.
    void emit(const Event& event) const noexcept {
        try {
            options_.on_event(event);
        } catch (...) {
        }
    }

    /// Sends one request on a pooled or new connection, waiting for one when all are busy; see the
    /// class comment for when it is resent.
    boost::asio::awaitable<expected<detail::HttpResponse, SendFailure>> send(
        const detail::HttpRequest& request, bool resend_safe, Clock::time_point deadline) {
        auto acquired = co_await pool_.acquire(deadline);
        if (!acquired) {
            co_return unexpected(queue_failure(acquired.error()));
        }
        detail::ConnectionPool::Lease lease = std::move(*acquired);
        // Waiting for a connection may have used up part of the time.
        const auto deadline_left = time_left(deadline);
        const auto timeout = std::min(options_.request_timeout, deadline_left);
        if (timeout <= std::chrono::milliseconds(0)) {
            co_return unexpected(
                SendFailure{Error{.kind = ErrorKind::timeout,
                                  .message = "the deadline passed while waiting for a connection"},
                            false});
        }
        for (int attempt = 0;; ++attempt) {
            if (!lease.connection()) {
                auto opened =
                    co_await detail::Connection::open(origin_, &tls_context_,
                                                      {std::min(options_.connect_timeout, timeout),
                                                       std::min(options_.tls_handshake_timeout, timeout)});
                if (!opened) {
                    co_return unexpected(SendFailure{describe(opened.error(), deadline_left), false});
                }
                lease.fill(std::move(*opened));
            }
            auto response = co_await lease.connection()->exchange(
                request, {timeout, options_.max_response_header, options_.max_response_body});
            if (response) {
                lease.give_back(response->keep_alive() && lease.connection()->nothing_buffered());
                co_return std::move(*response);
            }
            const detail::IoFailure& failure = response.error();
            // A write that failed delivered no complete request, so nothing can have acted on it; a
            // silent close before any answer on a reused connection is a stale connection, but only
            // a request that is safe to repeat may be assumed so.
            const bool never_processed = failure.step == detail::IoStep::write;
            const bool stale = lease.reused() && failure.nothing_received && (never_processed || resend_safe);
            // Silence is not staleness: a timeout goes to the retry policy, so that request_timeout
            // bounds each attempt.
            if (attempt == 0 && stale && failure.ec != boost::asio::error::operation_aborted &&
                failure.ec != boost::beast::error::timeout) {
                lease.discard();
                continue;
            }
            co_return unexpected(send_failure(failure, deadline_left, never_processed, resend_safe));
        }
    }

    // send's failures are built outside the coroutine, so that their Errors take no room in its frame.

    SendFailure queue_failure(detail::ConnectionPool::AcquireFailure failure) const {
        if (failure == detail::ConnectionPool::AcquireFailure::cancelled) {
            return {Error{.kind = ErrorKind::cancelled,
                          .message = "the operation was cancelled while waiting for a free connection"},
                    false};
        }
        return {Error{.kind = ErrorKind::timeout,
                      .message = "the deadline passed while every connection was busy "
                                 "(ClientOptions::max_connections = " +
                                 std::to_string(options_.max_connections) + ")"},
                false};
    }

    SendFailure send_failure(const detail::IoFailure& failure, std::chrono::milliseconds budget,
                             bool never_processed, bool resend_safe) const {
        Error error = describe(failure, budget);
        if (!never_processed && !resend_safe) {
            error.message +=
                "; the request was sent, so the server may have acted on it (for a create: list recent jobs "
                "to find out, and pass an idempotency_key so a retry cannot create a second job)";
        }
        return {std::move(error), !never_processed};
    }

    /// A public operation in progress, for the idle-connection timer.
    class OperationInProgress {
      public:
        explicit OperationInProgress(detail::ConnectionPool& pool) : pool_(pool) {
            pool_.operation_started();
        }
        ~OperationInProgress() { pool_.operation_finished(); }
        OperationInProgress(const OperationInProgress&) = delete;
        OperationInProgress& operator=(const OperationInProgress&) = delete;

      private:
        detail::ConnectionPool& pool_;
    };

    /// Runs a public operation: counts it as in progress (for the idle-connection timer) and turns an
    /// exception from Asio (cancellation of the awaiting coroutine shows up as one) into an Error, so
    /// callers only ever see `expected`.
    template <class T>
    boost::asio::awaitable<expected<T, Error>> shielded(
        boost::asio::awaitable<expected<T, Error>> operation) {
        const OperationInProgress in_progress(pool_);
        try {
            co_return co_await std::move(operation);
        } catch (const boost::system::system_error& failure) {
            co_return unexpected(thrown_error(failure.code()));
        }
    }

    static Error thrown_error(const boost::system::error_code& ec) {
        Error error = cancelled_error(ec);
        if (error.kind == ErrorKind::cancelled) {
            error.message = "the operation was cancelled";
        }
        return error;
    }

    std::chrono::milliseconds timeout_for(detail::IoStep step) const {
        switch (step) {
            case detail::IoStep::resolve:
            case detail::IoStep::connect:
                return options_.connect_timeout;
            case detail::IoStep::tls_handshake:
                return options_.tls_handshake_timeout;
            default:
                return options_.request_timeout;
        }
    }

    static const char* timeout_option_for(detail::IoStep step) {
        switch (step) {
            case detail::IoStep::resolve:
            case detail::IoStep::connect:
                return "connect_timeout";
            case detail::IoStep::tls_handshake:
                return "tls_handshake_timeout";
            default:
                return "request_timeout";
        }
    }

    /// `budget` is what the operation's deadline left for the attempt, which may be less than the
    /// step's own timeout; a timeout then names the deadline.
    Error describe(const detail::IoFailure& failure, std::chrono::milliseconds budget) const {
        namespace http = boost::beast::http;
        const std::string step = detail::to_string(failure.step);
        const std::string peer = origin_.host_header;
        Error error{.cause = failure.ec};
        if (failure.ec == boost::asio::error::operation_aborted) {
            error.kind = ErrorKind::cancelled;
            error.message = "the operation was cancelled during " + step;
        } else if (failure.ec == boost::beast::error::timeout) {
            error.kind = ErrorKind::timeout;
            const auto limit = timeout_for(failure.step);
            error.message =
                step + " with " + peer + " timed out after " +
                std::to_string(std::min(limit, budget).count()) + " ms (" +
                (budget < limit ? std::string("what the operation's deadline left, less than ") : "") +
                "ClientOptions::" + timeout_option_for(failure.step) + ")";
        } else if (failure.step == detail::IoStep::tls_handshake &&
                   (!failure.verification_problem.empty() ||
                    failure.ec.category() == boost::asio::error::get_ssl_category())) {
            // TLS itself refused (a certificate, a protocol version); a reset or a close during the
            // handshake falls through to a transport Error, which may be retried.
            error.kind = ErrorKind::tls;
            error.message = "the TLS handshake with " + peer + " failed: " +
                            (failure.verification_problem.empty() ? failure.ec.message()
                                                                  : "the server's certificate was refused (" +
                                                                        failure.verification_problem + ")");
        } else if (failure.ec == http::error::body_limit) {
            error.kind = ErrorKind::protocol;
            error.message = "the response body is larger than ClientOptions::max_response_body (" +
                            std::to_string(options_.max_response_body) + " bytes); it was not read";
        } else if (failure.ec == http::error::header_limit) {
            error.kind = ErrorKind::protocol;
            error.message = "the response header is larger than ClientOptions::max_response_header (" +
                            std::to_string(options_.max_response_header) + " bytes)";
        } else if (failure.ec.category() ==
                       boost::beast::http::make_error_code(http::error::bad_version).category() &&
                   failure.ec != http::error::end_of_stream && failure.ec != http::error::partial_message) {
            error.kind = ErrorKind::protocol;
            error.message =
                "the response from " + peer + " is not valid HTTP/1.1 (" + failure.ec.message() + ")";
        } else if (failure.step == detail::IoStep::read_header && failure.nothing_received) {
            error.message = "the server " + peer + " closed the connection before answering";
        } else {
            error.message = step + " with " + peer + " failed: " + failure.ec.message();
        }
        return error;
    }

    template <class T>
    expected<T, Error> read_response(detail::HttpResponse& response, std::string_view what,
                                     const std::optional<std::string>& job_id) const {
        return detail::read_response<T>(response, what, job_id, options_.api_key);
    }

    static std::optional<Error> check_chat_request(const ChatRequest& request,
                                                   const std::optional<std::string>& idempotency_key) {
        auto invalid = [](std::string message) {
            return Error{.kind = ErrorKind::invalid_argument, .message = std::move(message)};
        };
        if (request.model.empty()) {
            return invalid("ChatRequest::model is empty");
        }
        if (request.messages.empty()) {
            return invalid("ChatRequest::messages is empty; a job needs at least one message");
        }
        for (std::size_t i = 0; i < request.messages.size(); ++i) {
            if (request.messages[i].role.empty()) {
                return invalid("ChatRequest::messages[" + std::to_string(i) + "].role is empty");
            }
        }
        if (request.max_tokens && *request.max_tokens <= 0) {
            return invalid("ChatRequest::max_tokens must be greater than 0");
        }
        if (idempotency_key && idempotency_key->empty()) {
            return invalid("the idempotency key is empty; pass std::nullopt for none");
        }
        return std::nullopt;
    }

    executor_type executor_;
    ClientOptions options_;
    boost::asio::ssl::context tls_context_;
    detail::Origin origin_;
    std::string collection_target_;
    /// Host, Authorization, Accept and User-Agent lines, the same for every request. Holds the key.
    std::string common_headers_;
    std::optional<Error> configuration_error_;
    std::mt19937_64 random_{random_seed()};
    detail::Pacer create_pacer_;
    detail::Pacer poll_pacer_;
    detail::ConnectionPool pool_;
};

}  // namespace perplexity
