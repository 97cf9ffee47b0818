/// @file
/// Client, the operations on async jobs: chat completion jobs of the Sonar async API, and background
/// responses of the Agent API.
#pragma once

#include <perplexity/detail/config.hpp>
#include <perplexity/error.hpp>
#include <perplexity/expected.hpp>
#include <perplexity/job.hpp>
#include <perplexity/options.hpp>
#include <perplexity/response.hpp>
#include <perplexity/response_request.hpp>
#include <perplexity/resume.hpp>
#include <perplexity/wait.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace perplexity {

namespace detail {
class Engine;
}  // namespace detail

/// A client of Perplexity's two async APIs: the Sonar async chat completions API (`create`, `get`,
/// `list`, `wait`, `run`) and the Agent API's background responses (`create_response`, `get_response`,
/// `cancel_response`, `wait_response`, `run_response`). Both share the connections, the pacing and the
/// options.
///
/// Operations: each returns a lazy
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
/// the job on the server (the Sonar API has no cancel); cancelling `wait_response` or `run_response`
/// cancels the run on the server only with ResponseWaitOptions::cancel_on_abandon.
class Client {
  public:
    /// The executor every operation of the Client runs on.
    using executor_type = boost::asio::any_io_executor;

    /// A Client on `executor` (a strand, if the io_context runs on several threads) with `options`.
    /// Checks the options and loads the trusted certificates (ClientOptions::ca_file, or the system
    /// store) here, synchronously; opens no connection. Unusable options do not throw: they are kept in
    /// configuration_error() and returned by every operation.
    Client(executor_type executor, ClientOptions options)
        : Client(std::move(executor), std::move(options), detail::ExpectedFlavour{}) {}

    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    ~Client();

    /// The executor given at construction.
    executor_type get_executor() const noexcept { return executor_; }
    /// The options as given at construction; valid as long as the Client.
    const ClientOptions& options() const noexcept { return options_; }

    /// Why the options are unusable, if they are (an `ErrorKind::invalid_argument` Error: bad base URL,
    /// no API key, an unreadable CA, ...); every operation then fails with this error.
    const std::optional<Error>& configuration_error() const noexcept;

    /// Connections kept open for reuse right now.
    std::size_t idle_connection_count() const noexcept;
    /// Connections open right now: idle, in use or being opened; never more than
    /// ClientOptions::max_connections.
    std::size_t open_connection_count() const noexcept;
    /// Closes the idle connections now, e.g. before a long quiet period.
    void close_idle_connections() noexcept;

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
    /// rate_limited, decode). A failed create has no job id unless the answer named one; its
    /// `Error::job_may_exist` says whether a job may exist all the same (some attempt may have reached
    /// the API and was not refused), and `Error::idempotency_key` repeats the key. When a job may
    /// exist, create again with the same key (make one with `make_idempotency_key()`), or list recent
    /// jobs.
    boost::asio::awaitable<expected<Job, Error>> create(
        ChatRequest request, std::optional<std::string> idempotency_key = std::nullopt);

    /// Fetches a job by id, retrying per ClientOptions::retry. An unknown or expired id is
    /// `ErrorKind::http_status` with status 404; an answer about another job is `ErrorKind::decode`; an
    /// empty id is `ErrorKind::invalid_argument`. Every other Error carries `job_id`.
    boost::asio::awaitable<expected<Job, Error>> get(std::string job_id);

    /// Fetches one page of the job list, newest first. `limit` is the page size (the API's default when
    /// not set; 0 is `ErrorKind::invalid_argument`); `next_token` comes from the previous page. Retried
    /// per ClientOptions::retry.
    boost::asio::awaitable<expected<JobPage, Error>> list(
        std::optional<std::size_t> limit = std::nullopt,
        std::optional<std::string> next_token = std::nullopt);

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
    boost::asio::awaitable<expected<Job, Error>> wait(std::string job_id, WaitOptions options);

    /// `wait` with the default WaitOptions. (An overload rather than a default argument: GCC 12 mishandles
    /// a default argument of class type in a `co_await` expression, copying the options wrongly.)
    boost::asio::awaitable<expected<Job, Error>> wait(std::string job_id);

    /// Creates a job and waits for it: `create` with an idempotency key (a fresh UUID v4 unless
    /// `options.idempotency_key` gives one) reused on every retry, so a job is never created twice, then
    /// `wait`. The PollPolicy's deadline covers both. `options.on_created` sees the job before the first
    /// poll. When the create fails, the Error carries the key (`Error::idempotency_key`) and says
    /// whether a job may exist (`Error::job_may_exist`, worked out from what each attempt showed: a
    /// refused connection or a 429 leave it false); when one may, its message names the key to pass as
    /// `WaitOptions::idempotency_key` to a later `run` to pick the job up, and when none can, it says
    /// so. Once the job exists, every Error carries its id. Errors: those of `create` and of `wait`.
    ///
    /// With ClientOptions::ledger, the run is recorded (see `resume`): its intent (the request and the
    /// key) before the create is sent, its id once answered, its statuses and its outcome, each before
    /// going on. When the intent cannot be recorded, nothing is sent and the result is an
    /// `ErrorKind::ledger` Error; a later recording that fails is reported to ClientOptions::on_event
    /// (`ledger_write_failed`) and the wait goes on. `options.label` is stored with the entry.
    boost::asio::awaitable<expected<Job, Error>> run(ChatRequest request, WaitOptions options);

    /// `run` with the default WaitOptions (an overload, for GCC 12: see `wait`).
    boost::asio::awaitable<expected<Job, Error>> run(ChatRequest request);

    // The Agent API's background responses.

    /// Creates a background response (`POST /v1/responses` with `"background": true`); the returned
    /// Response is usually `queued`. Sends only the members `request` sets.
    ///
    /// The Agent API has no idempotency key, so the create is sent again only when it provably never
    /// reached the server or was refused with 429 or 408; otherwise a failure's `Error::job_may_exist`
    /// says a run may exist, and its message says plainly that it cannot be looked up (there is no list).
    /// Paced like `create`. Errors: `invalid_argument` (empty input; none of model, models and preset;
    /// more than 5 models; max_steps outside 1..100; max_output_tokens <= 0; store = false, which would
    /// hide the response from retrieve), an `http_status` 400 naming the field the API refused in
    /// `Error::api_param`, and any kind a request can fail with.
    boost::asio::awaitable<expected<Response, Error>> create_response(ResponseRequest request);

    /// Retrieves a response by id (`GET /v1/responses/{id}`), retrying per ClientOptions::retry. A
    /// failed or cancelled run is a Response with that status, not an Error (the API answers 200). An
    /// unknown id (or one created with store = false) is `http_status` 404; an answer about another
    /// response is `decode`. Every Error carries the id in `job_id`.
    boost::asio::awaitable<expected<Response, Error>> get_response(std::string response_id);

    /// Asks the server to cancel a running response (`POST /v1/responses/{id}/cancel`). Asynchronous: the
    /// acknowledgement says "cancelling", and the response shows `cancelled` shortly after. Errors: an
    /// `http_status` 400 when the response has already ended, 404 when the id is unknown or another
    /// account's (each with a message saying so), and any kind a request can fail with.
    boost::asio::awaitable<expected<CancelAcknowledgement, Error>> cancel_response(std::string response_id);

    /// Polls a response until it ends, like `wait`. The result is the response once it is `completed`,
    /// `requires_action` (the model called one of your function tools: see Response::function_calls,
    /// then create a response with `previous_response_id`) or `incomplete` (see incomplete_details).
    /// `failed` is an `ErrorKind::job_failed` Error with the API's `error` in `api_message`/`api_type`,
    /// `cancelled` an `ErrorKind::response_cancelled` Error; both carry the response (`Error::response`).
    /// queued, in_progress and statuses this release does not know keep the wait going. Deadline,
    /// cancellation and failed polls end it as for `wait`, with the response as last seen in
    /// `Error::response`; with `options.cancel_on_abandon`, the run is then also cancelled on the server.
    boost::asio::awaitable<expected<Response, Error>> wait_response(std::string response_id,
                                                                    ResponseWaitOptions options);

    /// `wait_response` with the default ResponseWaitOptions (an overload, for GCC 12: see `wait`).
    boost::asio::awaitable<expected<Response, Error>> wait_response(std::string response_id);

    /// Creates a background response and waits for it: `create_response`, then `wait_response`, under one
    /// PollPolicy deadline. `options.on_created` sees the response before the first poll: persist its id
    /// there, since a lost id cannot be found again. A failed create is sent again only when that is
    /// provably safe (see `create_response`); its Error says whether a run may exist. Errors: those of
    /// `create_response` and `wait_response`. With ClientOptions::ledger, recorded as `run` is; without
    /// a key, a run whose create's answer was lost is one `resume` can only report.
    boost::asio::awaitable<expected<Response, Error>> run_response(ResponseRequest request,
                                                                   ResponseWaitOptions options);

    /// `run_response` with the default ResponseWaitOptions (an overload, for GCC 12: see `wait`).
    boost::asio::awaitable<expected<Response, Error>> run_response(ResponseRequest request);

    // Durable jobs (ClientOptions::ledger).

    /// Carries on every unfinished entry of the ledger (ClientOptions::ledger), e.g. after a restart,
    /// and returns once each has ended; each outcome goes into the ledger and to `options.on_job` or
    /// `options.on_response` as it comes.
    ///
    /// A running entry (its job id recorded) is waited on again. A pending Sonar entry (intent recorded,
    /// no id: the process died before the create was answered, or every attempt failed with a job still
    /// possible) is created again with its idempotency key, so the API answers with the job the key
    /// already made, if any: never a second job. A pending Agent API entry is reported in
    /// ResumeReport::unfindable (no key and no list exist: a run may exist that nobody can find), unless
    /// `options.recreate_unfindable_responses`. Entries older than `options.recreate_within` (pending)
    /// or `options.wait_within` (running) are reported in ResumeReport::stale. `options.keep` may drop an
    /// entry: it is recorded as dropped, and its Agent API run cancelled on the server.
    ///
    /// Entries that this Client's runs (or another resume) are working on are left to them, so resume
    /// may run beside new runs; runs of another Client on the same ledger are unknown to it, so with
    /// several Clients, resume before any of them starts runs. Errors: `invalid_argument`
    /// without a ledger, `ledger` when it cannot be read; the failures of single entries are theirs, in
    /// their handlers and in the ledger. Cancelling resume cancels every wait it started (their entries
    /// stay unfinished, for the next resume).
    ///
    /// The entries come from `Ledger::claim`: with a fleet's ledger (PostgresLedger), those this
    /// replica holds and those of replicas whose lease expired, taken over atomically, so a fleet
    /// calls resume now and then (say, every lease interval) to carry on the jobs of a replica that
    /// died. A wait whose entry another replica took over ends with an `ErrorKind::taken_over` Error.
    boost::asio::awaitable<expected<ResumeReport, Error>> resume(ResumeOptions options);

    /// `resume` with the default ResumeOptions (an overload, for GCC 12: see `wait`).
    boost::asio::awaitable<expected<ResumeReport, Error>> resume();

  private:
    // The constructor the public one delegates to. Its last parameter names which `expected` this unit
    // uses, so that with separate compilation a unit compiled against the other one (C++23's
    // std::expected against the library's own, say) fails to link, naming the mismatch, instead of
    // passing results of another layout at run time.
    Client(executor_type executor, ClientOptions options, detail::ExpectedFlavour);

    executor_type executor_;
    ClientOptions options_;
    // Behind a pointer, so that a unit using the Client needs neither the engine's definition nor the
    // Beast, OpenSSL and Asio SSL headers it is built on (see <perplexity/src.hpp>).
    std::unique_ptr<detail::Engine> engine_;
};

}  // namespace perplexity

#ifndef PERPLEXITY_ASYNC_SEPARATE_COMPILATION
#include <perplexity/detail/client.ipp>
#endif
