// The drivers of the Client's operations: each awaits what its machine asks for (a sleep, a request, a
// poll) and feeds the result back, and reports what the machine says happened. No decision is made
// here: retries, pacing and deadlines are the request machine's (request_machine.hpp), polling and
// settling a run the wait machine's (wait_machine.hpp), and the wording of every Error error_text.hpp's.
//
// wait and run live as long as their job is waited for, so a waiting job's frames are kept few and
// small: wait or run (holding the machine and the options) and poll_until_final (holding the
// timer). Results travel through references, because every local of a coroutine gets its own slot in
// the frame for the frame's whole life (GCC 12 does not overlap them), and the short-lived coroutines
// of a create or a poll are gone while the job sleeps.
//
// The drivers of a wait serve both APIs: they are templates over the wait machine's Vocabulary
// (wait_vocabulary.hpp), so a Sonar job and an Agent API response are polled by the same lines.
#pragma once

#include <perplexity/detail/configuration.hpp>
#include <perplexity/detail/error_text.hpp>
#include <perplexity/detail/ledger_record.hpp>
#include <perplexity/detail/pacer.hpp>
#include <perplexity/detail/request.hpp>
#include <perplexity/detail/request_machine.hpp>
#include <perplexity/detail/response.hpp>
#include <perplexity/detail/transport.hpp>
#include <perplexity/detail/uuid.hpp>
#include <perplexity/detail/wait_machine.hpp>
#include <perplexity/detail/wait_vocabulary.hpp>
#include <perplexity/error.hpp>
#include <perplexity/events.hpp>
#include <perplexity/expected.hpp>
#include <perplexity/job.hpp>
#include <perplexity/json.hpp>
#include <perplexity/ledger.hpp>
#include <perplexity/options.hpp>
#include <perplexity/response.hpp>
#include <perplexity/response_request.hpp>
#include <perplexity/resume.hpp>
#include <perplexity/wait.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

namespace perplexity::detail {

/// A request's result, and what its attempts showed.
struct RequestOutcome {
    expected<HttpResponse, Error> response;
    /// It stopped retrying because the deadline left no room.
    bool gave_up_for_deadline = false;
    /// Some attempt may have reached the server and been acted on.
    bool may_have_acted = false;
};

/// What a Client runs its operations with: the checked configuration, the transport, the pacing state
/// and the drivers.
class Engine {
  public:
    Engine(boost::asio::any_io_executor executor, const ClientOptions& options)
        : executor_(executor), options_(options), transport_(executor, options) {
        if (auto checked = configure(options_, transport_.tls_context())) {
            configuration_ = std::move(*checked);
        } else {
            configuration_error_ = std::move(checked).error();
        }
        // A shared pace spaces the fleet's creates; the Client's own pacer then only keeps its pauses.
        create_pacer_.set_rate(options_.shared_create_pace ? 0 : options_.create_requests_per_minute);
    }

    const std::optional<Error>& configuration_error() const noexcept { return configuration_error_; }
    ConnectionPool& pool() noexcept { return transport_.pool(); }
    const ConnectionPool& pool() const noexcept { return transport_.pool(); }

    boost::asio::awaitable<expected<Job, Error>> create(ChatRequest request,
                                                        std::optional<std::string> idempotency_key) {
        const OperationInProgress in_progress(pool());
        if (auto invalid = check_create(request, idempotency_key)) {
            co_return unexpected(std::move(*invalid));
        }
        const HttpRequest http_request = create_request(request, idempotency_key);
        auto outcome = co_await execute(create_pacer_, http_request, idempotency_key.has_value(),
                                        no_deadline(), nullptr, {});
        co_return created(outcome, idempotency_key);
    }

    /// `get` (SonarJobs) and `get_response` (AgentResponses).
    template <class Vocabulary>
    boost::asio::awaitable<expected<typename Vocabulary::Item, Error>> get(std::string id) {
        const OperationInProgress in_progress(pool());
        if (auto invalid = check_id(id, Vocabulary::noun)) {
            co_return unexpected(std::move(*invalid));
        }
        const HttpRequest http_request = poll_request<Vocabulary>(id);
        auto outcome = co_await execute(poll_pacer_, http_request, true, no_deadline(), nullptr, id);
        co_return fetched<Vocabulary>(outcome, id);
    }

    boost::asio::awaitable<expected<JobPage, Error>> list(std::optional<std::size_t> limit,
                                                          std::optional<std::string> next_token) {
        const OperationInProgress in_progress(pool());
        if (auto invalid = check_list(limit)) {
            co_return unexpected(std::move(*invalid));
        }
        const HttpRequest http_request = configuration_.requests.list(limit, next_token);
        auto outcome = co_await execute(poll_pacer_, http_request, true, no_deadline(), nullptr, {});
        if (!outcome.response) {
            co_return unexpected(std::move(outcome.response).error());
        }
        co_return read_response<JobPage>(*outcome.response, "job list", std::nullopt, options_.api_key);
    }

    /// `wait` (SonarJobs) and `wait_response` (AgentResponses).
    template <class Vocabulary>
    boost::asio::awaitable<expected<typename Vocabulary::Item, Error>> wait(
        std::string id, typename Vocabulary::Options options) {
        const OperationInProgress in_progress(pool());
        // Tested as a bool here, so that no Error takes room in this frame for the whole wait.
        if (check_id(id, Vocabulary::noun).has_value()) {
            co_return unexpected(*check_id(id, Vocabulary::noun));
        }
        const PollPolicy& policy = options.poll ? *options.poll : options_.poll;
        BasicWaitMachine<Vocabulary> machine(policy, Clock::now() + policy.deadline, std::move(id),
                                             Vocabulary::cancels_on_abandon(options));
        co_await poll_until_final(machine, machine.start(), options);
        co_return std::move(machine).result();
    }

    boost::asio::awaitable<expected<Job, Error>> run(std::unique_ptr<ChatRequest> request,
                                                     WaitOptions options) {
        const OperationInProgress in_progress(pool());
        const PollPolicy& policy = options.poll ? *options.poll : options_.poll;
        WaitMachine machine(policy, Clock::now() + policy.deadline);
        std::string key = options.idempotency_key ? *options.idempotency_key : uuid_v4();
        EntryId entry = 0;
        std::optional<WaitStep> first;
        try {
            first = co_await create_for_run(std::move(request), key, machine, options, entry);
        } catch (const boost::system::system_error& thrown) {
            // Cancelled between two awaits of the create (see take_cancellation).
            first = machine.interrupted(thrown.code());
        }
        const boost::asio::cancellation_state cancellation =
            co_await boost::asio::this_coro::cancellation_state;
        if (take_cancellation(cancellation, machine, *first)) {
            co_await boost::asio::this_coro::reset_cancellation_state();
        }
        co_await poll_until_final(machine, *first, options, entry);
        co_return std::move(machine).result();
    }

    // The Agent API's background responses.

    boost::asio::awaitable<expected<Response, Error>> create_response(ResponseRequest request) {
        const OperationInProgress in_progress(pool());
        if (auto invalid = check_response_create(request)) {
            co_return unexpected(std::move(*invalid));
        }
        const HttpRequest http_request = response_create_request(request);
        // No idempotency key exists: the create is never sent again once it may have arrived.
        auto outcome = co_await execute(create_pacer_, http_request, false, no_deadline(), nullptr, {});
        co_return created_response(outcome);
    }

    boost::asio::awaitable<expected<CancelAcknowledgement, Error>> cancel_response(std::string response_id) {
        const OperationInProgress in_progress(pool());
        if (auto invalid = check_id(response_id, AgentResponses::noun)) {
            co_return unexpected(std::move(*invalid));
        }
        const HttpRequest http_request = configuration_.requests.cancel_response(response_id);
        // Safe to send again: a second cancel of the same run changes nothing.
        auto outcome = co_await execute(poll_pacer_, http_request, true, no_deadline(), nullptr, response_id);
        co_return cancel_result(outcome, response_id);
    }

    boost::asio::awaitable<expected<Response, Error>> run_response(std::unique_ptr<ResponseRequest> request,
                                                                   ResponseWaitOptions options) {
        const OperationInProgress in_progress(pool());
        const PollPolicy& policy = options.poll ? *options.poll : options_.poll;
        ResponseWaitMachine machine(policy, Clock::now() + policy.deadline, {},
                                    AgentResponses::cancels_on_abandon(options));
        EntryId entry = 0;
        std::optional<ResponseWaitStep> first;
        try {
            first = co_await create_response_for_run(std::move(request), machine, options, entry);
        } catch (const boost::system::system_error& thrown) {
            first = machine.interrupted(thrown.code());
        }
        const boost::asio::cancellation_state cancellation =
            co_await boost::asio::this_coro::cancellation_state;
        if (take_cancellation(cancellation, machine, *first)) {
            co_await boost::asio::this_coro::reset_cancellation_state();
        }
        co_await poll_until_final(machine, *first, options, entry);
        co_return std::move(machine).result();
    }

    // Durable jobs.

    /// `Client::resume`: carries on every unfinished entry of the ledger, all at once, and reports.
    boost::asio::awaitable<expected<ResumeReport, Error>> resume(ResumeOptions options) {
        const OperationInProgress in_progress(pool());
        if (!options_.ledger) {
            co_return unexpected(resume_without_ledger());
        }
        // Named: GCC 12 frees a temporary argument of a co_await'ed call too early.
        LedgerQuery unfinished = unfinished_entries();
        expected<std::vector<LedgerEntry>, Error> found = std::vector<LedgerEntry>{};
        try {
            found = co_await options_.ledger->claim(std::move(unfinished));
        } catch (const boost::system::system_error& thrown) {
            // Cancelled before the claim began (Asio throws at the co_await): nothing was claimed.
            co_return unexpected(cancelled(thrown.code(), "before reading the ledger"));
        }
        if (!found) {
            co_return unexpected(std::move(found).error());
        }
        ResumeReport report;
        for (LedgerEntry& entry : *found) {
            if (entries_in_hand_.contains(entry.id)) {
                continue;
            }
            switch (plan_resume(entry, std::chrono::system_clock::now(), options)) {
                case ResumeAction::skip:
                    break;
                case ResumeAction::report_stale:
                    report.stale.push_back(std::move(entry));
                    break;
                case ResumeAction::report_unfindable:
                    report.unfindable.push_back(std::move(entry));
                    break;
                case ResumeAction::wait:
                case ResumeAction::create_again:
                    // Taken in hand before any await (the check above is in the same stretch), so that no
                    // run or other resume of this Client works on the same entry at the same time.
                    entries_in_hand_.insert(entry.id);
                    if (options.keep && !options.keep(entry)) {
                        try {
                            co_await drop(entry);
                        } catch (const boost::system::system_error&) {
                            // Cancelled before the drop was recorded: the entry stays as it was, and the
                            // cancellation is handled below.
                        }
                        entries_in_hand_.erase(entry.id);
                        report.dropped.push_back(std::move(entry));
                    } else {
                        // Let go of by poll_until_final, once its outcome is recorded.
                        report.resumed.push_back(std::move(entry));
                    }
                    break;
            }
        }
        // Cancelled before the entries were carried on: they are let go of, unfinished, for a later resume.
        const boost::asio::cancellation_state cancellation =
            co_await boost::asio::this_coro::cancellation_state;
        if (cancellation.cancelled() != boost::asio::cancellation_type::none) {
            for (const LedgerEntry& entry : report.resumed) {
                entries_in_hand_.erase(entry.id);
            }
            co_return unexpected(
                cancelled(boost::asio::error::operation_aborted, "before carrying the entries on"));
        }
        co_await carry_on(report.resumed, options);
        co_return report;
    }

  private:
    HttpRequest create_request(const ChatRequest& request, const std::optional<std::string>& key) const {
        return configuration_.requests.create(
            create_body_from_text(boost::json::serialize(boost::json::value_from(request)), key));
    }

    HttpRequest response_create_request(const ResponseRequest& request) const {
        return configuration_.requests.create_response(boost::json::serialize(create_response_body(request)));
    }

    /// The job (or response) a create's outcome describes, announced to ClientOptions::on_event.
    template <class Item>
    expected<Item, Error> created_item(RequestOutcome& outcome, std::string_view noun) const {
        expected<Item, Error> item =
            outcome.response ? read_response<Item>(*outcome.response, noun, std::nullopt, options_.api_key)
                             : expected<Item, Error>(unexpected(std::move(outcome.response).error()));
        if (item && options_.on_event) {
            Event event{.kind = Event::Kind::job_created, .job_id = item->id};
            point_at(event, &*item);
            emit(event);
        }
        return item;
    }

    expected<Job, Error> created_job(RequestOutcome& outcome) const {
        return created_item<Job>(outcome, "job");
    }

    /// The result of `create_response`: a failure says whether a response may exist.
    expected<Response, Error> created_response(RequestOutcome& outcome) const {
        expected<Response, Error> response = created_item<Response>(outcome, "response");
        if (!response) {
            note_response_create_attempts(response.error(), outcome.may_have_acted);
        }
        return response;
    }

    expected<CancelAcknowledgement, Error> cancel_result(RequestOutcome& outcome,
                                                         const std::string& id) const {
        auto acknowledged = read_about<CancelAcknowledgement>(outcome, "cancel acknowledgement", id);
        if (!acknowledged) {
            explain_cancel_refusal(acknowledged.error(), id);
        }
        return acknowledged;
    }

    /// The body of an answer about job (or response) `id`, or an Error carrying the id.
    template <class T>
    expected<T, Error> read_about(RequestOutcome& outcome, std::string_view what,
                                  const std::string& id) const {
        if (!outcome.response) {
            Error error = std::move(outcome.response).error();
            error.job_id = id;
            return unexpected(std::move(error));
        }
        return read_response<T>(*outcome.response, what, id, options_.api_key);
    }

    static void point_at(Event& event, const Job* job) noexcept { event.job = job; }
    static void point_at(Event& event, const Response* response) noexcept { event.response = response; }
    static void point_at(ProgressEvent& event, const Job* job) noexcept { event.job = job; }
    static void point_at(ProgressEvent& event, const Response* response) noexcept {
        event.response = response;
    }

    /// The result of `create`: a failure says whether a job may exist, and with which key.
    expected<Job, Error> created(RequestOutcome& outcome, const std::optional<std::string>& key) const {
        expected<Job, Error> job = created_job(outcome);
        if (!job) {
            note_create_attempts(job.error(), key, outcome.may_have_acted);
        }
        return job;
    }

    /// The create of `run`, settled by the machine. A plain function: the create is one coroutine
    /// (create_recorded), so that a job queued for a connection in a burst of runs holds one frame fewer.
    boost::asio::awaitable<WaitStep> create_for_run(std::unique_ptr<ChatRequest> request,
                                                    const std::string& key, WaitMachine& machine,
                                                    const WaitOptions& options, EntryId& entry) {
        if (const auto refused = refuse_invalid_create(check_create(*request, key), key, machine)) {
            return ready(*refused);
        }
        return create_recorded(boost::json::serialize(boost::json::value_from(*request)), key, machine,
                               options, entry);
    }

    /// The create of `run_response`, settled by the machine; sent once, as no key makes it safe to repeat.
    boost::asio::awaitable<ResponseWaitStep> create_response_for_run(std::unique_ptr<ResponseRequest> request,
                                                                     ResponseWaitMachine& machine,
                                                                     const ResponseWaitOptions& options,
                                                                     EntryId& entry) {
        if (const auto refused = refuse_invalid_create(check_response_create(*request), no_key(), machine)) {
            return ready(*refused);
        }
        return create_recorded(boost::json::serialize(create_response_body(*request)), no_key(), machine,
                               options, entry);
    }

    /// The key of a create that has none (the Agent API's): one empty string that outlives every create.
    static const std::string& no_key() {
        static const std::string none;
        return none;
    }

    /// Asio throws at any co_await of a coroutine cancelled between two of its awaits, before the awaited
    /// one starts (a create asleep until its pacing slot, say): the wait would not even record its
    /// outcome. So `run`, `run_response` and a resumed entry look at their cancellation state once their
    /// first step is made, and a cancellation goes to the machine instead (`first` becomes the step it
    /// says), after which the wait only finishes. Whether there was one: the caller then resets the
    /// state, so that its next co_await does not throw.
    template <class Vocabulary>
    static bool take_cancellation(const boost::asio::cancellation_state& cancellation,
                                  BasicWaitMachine<Vocabulary>& machine,
                                  typename BasicWaitMachine<Vocabulary>::Step& first) {
        if (cancellation.cancelled() == boost::asio::cancellation_type::none) {
            return false;
        }
        if (first.action != BasicWaitMachine<Vocabulary>::Step::Action::finish) {
            first = machine.interrupted(boost::asio::error::operation_aborted);
        }
        return true;
    }

    /// An awaitable of a step already decided.
    template <class Step>
    static boost::asio::awaitable<Step> ready(Step step) {
        co_return step;
    }

    /// The create of a run, or of a resumed pending entry (`entry` already set). With a ledger, the
    /// intent is recorded first, and when it cannot be, nothing is sent. `request_text` is what the ledger
    /// keeps: the ChatRequest's JSON for Sonar (the body adds the key), the whole body for the Agent API.
    /// A Sonar create carries its key, so it is sent again after any retryable failure; an Agent API
    /// create has none, so it is sent once unless it provably never arrived.
    template <class Vocabulary>
    boost::asio::awaitable<typename BasicWaitMachine<Vocabulary>::Step> create_recorded(
        std::string request_text, const std::string& key, BasicWaitMachine<Vocabulary>& machine,
        const typename Vocabulary::Options& options, EntryId& entry) {
        constexpr bool has_key = Vocabulary::ledger_api == LedgerApi::sonar;
        if (options_.ledger && entry == 0) {
            if (const auto refused = co_await open_entry(request_text, key, machine, options, entry)) {
                co_return *refused;
            }
        }
        const HttpRequest http_request =
            has_key ? configuration_.requests.create(create_body_from_text(request_text, key))
                    : configuration_.requests.create_response(request_text);
        // Only the body is needed from here on: the text's memory goes back now, not when the create ends.
        std::string().swap(request_text);
        co_return settle_created(co_await execute(create_pacer_, http_request, has_key, machine.deadline(),
                                                  options.on_progress ? &options.on_progress : nullptr, {}),
                                 key, machine, options);
    }

    /// Records a run's intent as a new entry, taken in hand; when it cannot be, the step that ends the run
    /// with the ledger's Error. A coroutine of its own, so that the Error takes no room in the frame of a
    /// create that has no ledger.
    template <class Vocabulary>
    boost::asio::awaitable<std::optional<typename BasicWaitMachine<Vocabulary>::Step>> open_entry(
        const std::string& request_text, const std::string& key, BasicWaitMachine<Vocabulary>& machine,
        const typename Vocabulary::Options& options, EntryId& entry) {
        auto added = co_await record_intent(Vocabulary::ledger_api, options.label, request_text, key);
        if (!added) {
            co_return refuse_invalid_create(std::optional<Error>(intent_not_recorded(added.error())), key,
                                            machine);
        }
        entry = *added;
        entries_in_hand_.insert(entry);
        co_return std::nullopt;
    }

    // The ledger's records are made in plain functions: GCC 12 mishandles aggregate temporaries made
    // inside a co_await expression.

    boost::asio::awaitable<expected<EntryId, Error>> record_intent(LedgerApi api, const std::string& label,
                                                                   const std::string& request,
                                                                   const std::string& key) {
        return options_.ledger->add(LedgerIntent{.api = api,
                                                 .label = label,
                                                 .request = request,
                                                 .idempotency_key = key,
                                                 .at = std::chrono::system_clock::now()});
    }

    static LedgerUpdate dropped_update(std::string note) {
        return LedgerUpdate{
            .state = EntryState::dropped, .error = std::move(note), .at = std::chrono::system_clock::now()};
    }

    /// Applies `update` to `entry`. A failure does not stop what the Client is doing (the job exists
    /// and is paid for), but is reported to ClientOptions::on_event.
    boost::asio::awaitable<void> record(EntryId entry, LedgerUpdate update, std::string_view job_id) {
        if (auto failed = co_await options_.ledger->update(entry, std::move(update))) {
            report_ledger_failure(*failed, job_id);
        }
    }

    // What the drivers do between two awaits is done in plain member functions like these, so that the
    // values they make (Jobs, Errors, answers) take no room in the coroutine frames, which a burst of
    // thousands of runs holds at once.

    template <class Vocabulary>
    std::optional<typename BasicWaitMachine<Vocabulary>::Step> refuse_invalid_create(
        std::optional<Error> invalid, const std::string& key, BasicWaitMachine<Vocabulary>& machine) {
        if (!invalid) {
            return std::nullopt;
        }
        expected<typename Vocabulary::Item, Error> refused = unexpected(std::move(*invalid));
        return machine.created(refused, false, key, Clock::now(), random_unit());
    }

    template <class Vocabulary>
    typename BasicWaitMachine<Vocabulary>::Step settle_created(RequestOutcome&& outcome,
                                                               const std::string& key,
                                                               BasicWaitMachine<Vocabulary>& machine,
                                                               const typename Vocabulary::Options& options) {
        auto created = created_item<typename Vocabulary::Item>(outcome, Vocabulary::noun);
        const auto step = machine.created(created, outcome.may_have_acted, key, Clock::now(), random_unit());
        report(step, machine, options);
        return step;
    }

    /// A get's answer: the job (or response) asked for, or an Error carrying its id.
    template <class Vocabulary>
    expected<typename Vocabulary::Item, Error> fetched(RequestOutcome& outcome, const std::string& id) const {
        auto item = read_about<typename Vocabulary::Item>(outcome, Vocabulary::noun, id);
        if (item && item->id != id) {
            return unexpected(Vocabulary::answered_about_another(id, item->id));
        }
        return item;
    }

    /// The wait of `wait` and `run` (and of their Agent API twins), from the machine's `step` on: sleeps
    /// and polls until it finishes.
    template <class Vocabulary>
    boost::asio::awaitable<void> poll_until_final(BasicWaitMachine<Vocabulary>& machine,
                                                  typename BasicWaitMachine<Vocabulary>::Step step,
                                                  const typename Vocabulary::Options& options,
                                                  EntryId entry = 0) {
        using Step = typename BasicWaitMachine<Vocabulary>::Step;
        // One timer for every sleep of the wait, in this frame: a sleep in a coroutine of its own would
        // add a frame per waiting job.
        boost::asio::steady_timer timer(executor_);
        while (step.action != Step::Action::finish) {
            try {
                if (entry != 0) {
                    co_await record_progress(machine, step, entry);
                }
                // Compiled only where the API can cancel: the awaitables of these two awaits take room in
                // the frame of every waiting job, whether or not they are ever awaited.
                if constexpr (Vocabulary::can_cancel_on_server) {
                    if (step.action == Step::Action::cancel_on_server) {
                        // The caller may have cancelled the operation: its cancellation state is reset, so
                        // that awaiting the cancel does not throw at once, and this one request still goes
                        // out, bounded by the request timeout instead.
                        co_await boost::asio::this_coro::reset_cancellation_state();
                        step = co_await cancel_abandoned(machine);
                        continue;
                    }
                }
                if (step.action == Step::Action::sleep) {
                    notify(options, {.kind = ProgressEvent::Kind::sleeping,
                                     .job_id = machine.job_id(),
                                     .attempt = step.poll,
                                     .delay = step.delay});
                    if (step.delay > std::chrono::milliseconds(0)) {
                        timer.expires_after(step.delay);
                        const auto [ec] =
                            co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
                        if (ec) {
                            step = machine.interrupted(ec);
                            continue;
                        }
                    }
                    step = machine.woke();
                } else if (const EntryHold hold =
                               entry != 0 ? options_.ledger->holding(entry) : EntryHold::held;
                           hold == EntryHold::taken) {
                    step = machine.taken_over(entry_taken_over(entry, machine.job_id()));
                } else if (hold == EntryHold::unsure) {
                    step = machine.hold_unsure(Clock::now(), random_unit());
                } else {
                    step = co_await poll_once(machine, options);
                }
            } catch (const boost::system::system_error& thrown) {
                // Cancellation of the awaiting coroutine surfaces as an exception.
                step = machine.interrupted(thrown.code());
            }
        }
        if (entry != 0) {
            // The outcome is recorded even when the caller cancelled the wait, which would make any await
            // throw at once: the job must not be left looking unanswered, or answered, when it is not.
            co_await boost::asio::this_coro::reset_cancellation_state();
            co_await record_outcome(machine, entry);
            entries_in_hand_.erase(entry);
        }
    }

    /// Records what a run's step shows (the job id, a new status), if anything.
    template <class Vocabulary>
    boost::asio::awaitable<void> record_progress(const BasicWaitMachine<Vocabulary>& machine,
                                                 const typename BasicWaitMachine<Vocabulary>::Step& step,
                                                 EntryId entry) {
        // Only a step that changed the status is recorded, and its job then lives in the machine (a stale
        // answer, which lives no longer than settle_poll, never changes the status).
        if (auto update = progress_update<Vocabulary>(step, std::chrono::system_clock::now())) {
            co_await record(entry, std::move(*update), machine.job_id());
        }
    }

    /// Records how the run ended. When the ledger answers that another replica took the entry over,
    /// the run ends with that Error instead: the other replica reports the outcome, not this one.
    template <class Vocabulary>
    boost::asio::awaitable<void> record_outcome(BasicWaitMachine<Vocabulary>& machine, EntryId entry) {
        if (machine.error() != nullptr && machine.error()->kind == ErrorKind::taken_over) {
            co_return;
        }
        LedgerUpdate update =
            final_update<Vocabulary>(machine.job(), machine.error(), std::chrono::system_clock::now());
        if (auto failed = co_await options_.ledger->update(entry, std::move(update))) {
            if (failed->kind == ErrorKind::taken_over) {
                machine.taken_over(std::move(*failed));
            } else {
                report_ledger_failure(*failed, machine.job_id());
            }
        }
    }

    void report_ledger_failure(const Error& error, std::string_view job_id) const {
        if (options_.on_event) {
            emit(Event{.kind = Event::Kind::ledger_write_failed, .job_id = job_id, .error = &error});
        }
    }

    /// Carries on the entries `resume` kept, all at once; each outcome goes to the ledger and to the
    /// caller's handler. Cancelling resume cancels every one of them (their entries stay unfinished).
    boost::asio::awaitable<void> carry_on(const std::vector<LedgerEntry>& entries,
                                          const ResumeOptions& options) {
        using Operation = decltype(boost::asio::co_spawn(
            executor_, std::declval<boost::asio::awaitable<void>>(), boost::asio::deferred));
        std::vector<Operation> operations;
        operations.reserve(entries.size());
        for (const LedgerEntry& entry : entries) {
            operations.push_back(boost::asio::co_spawn(
                executor_,
                entry.api == LedgerApi::agent
                    ? resume_entry<AgentResponses>(entry, options.wait_response, options.on_response)
                    : resume_entry<SonarJobs>(entry, options.wait, options.on_job),
                boost::asio::deferred));
        }
        if (operations.empty()) {
            co_return;
        }
        co_await boost::asio::experimental::make_parallel_group(std::move(operations))
            .async_wait(boost::asio::experimental::wait_for_all(), boost::asio::use_awaitable);
    }

    /// One resumed entry, from its first step to its outcome, which goes to the caller's handler.
    template <class Vocabulary>
    boost::asio::awaitable<void> resume_entry(
        const LedgerEntry& entry, const typename Vocabulary::Options& wait,
        const std::function<void(const LedgerEntry&, const expected<typename Vocabulary::Item, Error>&)>&
            on_outcome) {
        const PollPolicy& policy = wait.poll ? *wait.poll : options_.poll;
        BasicWaitMachine<Vocabulary> machine(policy, Clock::now() + policy.deadline, entry.job_id,
                                             Vocabulary::cancels_on_abandon(wait));
        EntryId id = entry.id;
        using Step = typename BasicWaitMachine<Vocabulary>::Step;
        std::optional<Step> first;
        try {
            first = co_await resume_step(entry, machine, wait, id);
        } catch (const boost::system::system_error& thrown) {
            first = machine.interrupted(thrown.code());
        }
        const boost::asio::cancellation_state cancellation =
            co_await boost::asio::this_coro::cancellation_state;
        if (take_cancellation(cancellation, machine, *first)) {
            co_await boost::asio::this_coro::reset_cancellation_state();
        }
        co_await poll_until_final(machine, *first, wait, id);
        const expected<typename Vocabulary::Item, Error> outcome = std::move(machine).result();
        if (on_outcome) {
            on_outcome(entry, outcome);
        }
    }

    /// Where a resumed entry starts: a poll of its recorded id, or its create again (Sonar: with its key,
    /// so the API answers with the job the key already made, if it did).
    template <class Vocabulary>
    boost::asio::awaitable<typename BasicWaitMachine<Vocabulary>::Step> resume_step(
        const LedgerEntry& entry, BasicWaitMachine<Vocabulary>& machine,
        const typename Vocabulary::Options& options, EntryId& id) {
        if (!entry.job_id.empty()) {
            co_return machine.start();
        }
        if (auto unusable = check_recorded_request(entry)) {
            co_return *refuse_invalid_create(std::move(unusable), entry.idempotency_key, machine);
        }
        co_return co_await create_recorded(entry.request, entry.idempotency_key, machine, options, id);
    }

    static LedgerQuery unfinished_entries() {
        return LedgerQuery{.states = {EntryState::pending, EntryState::running}};
    }

    /// An entry's request is sent again only if it is a JSON object: a damaged entry is not sent.
    static std::optional<Error> check_recorded_request(const LedgerEntry& entry) {
        boost::system::error_code ec;
        const boost::json::value request = boost::json::parse(entry.request, ec);
        if (ec || !request.is_object()) {
            return unusable_recorded_request(entry.id, ec ? ec.message() : "not a JSON object");
        }
        return std::nullopt;
    }

    /// Records that the caller dropped `entry`, and cancels its run on the server where the API can.
    boost::asio::awaitable<void> drop(const LedgerEntry& entry) {
        std::string note = "dropped on resume";
        if (entry.api == LedgerApi::agent && !entry.job_id.empty()) {
            const auto cancelled = co_await cancel_response(entry.job_id);
            note +=
                cancelled ? "; cancelled on the server" : "; the cancel failed: " + cancelled.error().message;
        } else if (!entry.job_id.empty()) {
            note += "; the Sonar API cannot cancel a job, which runs to its end";
        }
        LedgerUpdate dropped = dropped_update(std::move(note));
        co_await record(entry.id, std::move(dropped), entry.job_id);
    }

    /// One poll, its answer fed to the machine and reported. It sends the request itself rather than
    /// through `get`: one coroutine frame fewer per poll.
    template <class Vocabulary>
    boost::asio::awaitable<typename BasicWaitMachine<Vocabulary>::Step> poll_once(
        BasicWaitMachine<Vocabulary>& machine, const typename Vocabulary::Options& options) {
        const HttpRequest http_request = poll_request<Vocabulary>(machine.job_id());
        co_return settle_poll(co_await execute(poll_pacer_, http_request, true, machine.deadline(),
                                               &options.on_progress, machine.job_id()),
                              machine, options);
    }

    template <class Vocabulary>
    HttpRequest poll_request(const std::string& id) const {
        if constexpr (std::is_same_v<typename Vocabulary::Item, Response>) {
            return configuration_.requests.get_response(id);
        } else {
            return configuration_.requests.get(id);
        }
    }

    template <class Vocabulary>
    typename BasicWaitMachine<Vocabulary>::Step settle_poll(RequestOutcome&& outcome,
                                                            BasicWaitMachine<Vocabulary>& machine,
                                                            const typename Vocabulary::Options& options) {
        auto answer = fetched<Vocabulary>(outcome, machine.job_id());
        const auto step = machine.polled(answer, outcome.gave_up_for_deadline, Clock::now(), random_unit());
        report(step, machine, options);
        return step;
    }

    /// The cancel of an abandoned wait (ResponseWaitOptions::cancel_on_abandon).
    template <class Vocabulary>
    boost::asio::awaitable<typename BasicWaitMachine<Vocabulary>::Step> cancel_abandoned(
        BasicWaitMachine<Vocabulary>& machine) {
        const HttpRequest http_request = configuration_.requests.cancel_response(machine.job_id());
        auto outcome = co_await execute(poll_pacer_, http_request, true,
                                        Clock::now() + options_.request_timeout, nullptr, machine.job_id());
        co_return machine.cancel_answered(cancel_result(outcome, machine.job_id()));
    }

    /// Reports what a wait step says happened to the job.
    template <class Step, class Machine, class Options>
    void report(const Step& step, const Machine& machine, const Options& options) const {
        if (step.job == nullptr) {
            return;
        }
        const std::string_view job_id = machine.job_id();
        const auto progress = [&](ProgressEvent::Kind kind) {
            if (options.on_progress) {
                ProgressEvent event{.kind = kind, .job_id = job_id};
                point_at(event, step.job);
                options.on_progress(event);
            }
        };
        if (step.created) {
            if (options.on_created) {
                options.on_created(*step.job);
            }
            progress(ProgressEvent::Kind::created);
        }
        if (step.polled) {
            progress(ProgressEvent::Kind::polled);
        }
        if (step.status_changed) {
            progress(ProgressEvent::Kind::status_changed);
            // run's create announces itself as job_created; a poll's news is a status change.
            if (options_.on_event && !step.created) {
                Event event{.kind = Event::Kind::job_status_changed, .job_id = job_id};
                point_at(event, step.job);
                emit(event);
            }
        }
    }

    /// One request with pacing and retries, as the request machine directs. A non-2xx answer that is
    /// not retried is the result too, for read_response to turn into an Error.
    boost::asio::awaitable<RequestOutcome> execute(Pacer& pacer, const HttpRequest& request, bool resend_safe,
                                                   Clock::time_point deadline,
                                                   const ProgressHandler* progress, std::string_view job_id) {
        if (configuration_error_) {
            co_return RequestOutcome{unexpected(*configuration_error_)};
        }
        SharedCreatePace* const shared_pace =
            &pacer == &create_pacer_ ? options_.shared_create_pace.get() : nullptr;
        RequestMachine machine(options_.retry, pacer, resend_safe, deadline, shared_pace != nullptr);
        std::optional<HttpResponse> answer;
        RequestStep step = machine.start(Clock::now());
        while (step.action != RequestStep::Action::finish) {
            try {
                if (step.action == RequestStep::Action::reserve) {
                    step = co_await reserve_shared_slot(*shared_pace, machine);
                    continue;
                }
                if (step.pause_fleet > std::chrono::milliseconds(0)) {
                    co_await pause_fleet(*shared_pace, step.pause_fleet, job_id);
                    if (step.action == RequestStep::Action::finish) {
                        break;
                    }
                }
                if (step.action == RequestStep::Action::sleep) {
                    if (step.retrying != nullptr) {
                        report_retry(request, job_id, step, progress);
                    }
                    const auto ec = co_await sleep_until(step.until);
                    step = ec ? machine.interrupted(ec) : machine.woke(Clock::now());
                    continue;
                }
                const Clock::time_point sent = report_sending(request, job_id, step.attempt);
                step = absorb(co_await transport_.send(configuration_.origin, request, resend_safe, deadline),
                              machine, answer, request, job_id, step.attempt, sent);
            } catch (const boost::system::system_error& thrown) {
                // Cancellation of the awaiting coroutine surfaces as an exception.
                step = machine.interrupted(thrown.code());
            }
        }
        co_return finished(machine, answer);
    }

    /// Takes a slot of the fleet's create pace for the machine. A coroutine of its own, so that the
    /// pace's answer takes no room in the frame of every request.
    static boost::asio::awaitable<RequestStep> reserve_shared_slot(SharedCreatePace& pace,
                                                                   RequestMachine& machine) {
        auto wait = co_await pace.reserve();
        if (!wait) {
            co_return machine.reservation_failed(std::move(wait).error());
        }
        co_return machine.reserved(*wait, Clock::now());
    }

    /// Passes a 429's pause on to the whole fleet. A failure is reported, not fatal: this Client
    /// pauses anyway, and the next slot it reserves will say whether the database is back.
    boost::asio::awaitable<void> pause_fleet(SharedCreatePace& pace, std::chrono::milliseconds pause,
                                             std::string_view job_id) {
        if (auto failed = co_await pace.pause(pause)) {
            report_ledger_failure(*failed, job_id);
        }
    }

    /// Reports one attempt's outcome and feeds it to the machine; an answer is kept in `answer`.
    RequestStep absorb(expected<HttpResponse, SendFailure>&& sent, RequestMachine& machine,
                       std::optional<HttpResponse>& answer, const HttpRequest& request,
                       std::string_view job_id, unsigned attempt, Clock::time_point sent_at) {
        report_outcome(request, job_id, attempt, sent_at, sent);
        if (!sent) {
            return machine.failed(std::move(sent).error(), Clock::now(), random_unit());
        }
        answer = std::move(*sent);
        return machine.answered(reply_of(*answer, std::chrono::system_clock::now()), Clock::now(),
                                random_unit());
    }

    /// The request's result, once the machine finished it.
    static RequestOutcome finished(RequestMachine& machine, std::optional<HttpResponse>& answer) {
        return RequestOutcome{machine.finished_with_answer()
                                  ? expected<HttpResponse, Error>(std::move(*answer))
                                  : expected<HttpResponse, Error>(unexpected(std::move(machine.error()))),
                              machine.gave_up_for_deadline(), machine.may_have_acted()};
    }

    /// Sleeps until `until`; a non-zero result means the caller cancelled the sleep. Only pacing waits
    /// and retries sleep here, so most requests never make this frame.
    boost::asio::awaitable<boost::system::error_code> sleep_until(Clock::time_point until) {
        boost::asio::steady_timer timer(executor_, until);
        auto [ec] = co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
        co_return ec;
    }

    // Events are built outside the coroutines, so that they take no room in the frames.

    Clock::time_point report_sending(const HttpRequest& request, std::string_view job_id,
                                     unsigned attempt) const {
        if (!options_.on_event) {
            return {};
        }
        emit(request_event(Event::Kind::request_sent, request, job_id, attempt));
        return Clock::now();
    }

    void report_outcome(const HttpRequest& request, std::string_view job_id, unsigned attempt,
                        Clock::time_point sent, const expected<HttpResponse, SendFailure>& outcome) const {
        if (!options_.on_event) {
            return;
        }
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

    void report_retry(const HttpRequest& request, std::string_view job_id, const RequestStep& step,
                      const ProgressHandler* progress) const {
        if (progress != nullptr && *progress) {
            (*progress)({.kind = ProgressEvent::Kind::retry_scheduled,
                         .job_id = job_id,
                         .error = step.retrying,
                         .attempt = step.attempt,
                         .delay = step.delay});
        }
        if (options_.on_event) {
            Event event = request_event(Event::Kind::retry_scheduled, request, job_id, step.attempt);
            event.delay = step.delay;
            event.error = step.retrying;
            emit(event);
        }
    }

    static Event request_event(Event::Kind kind, const HttpRequest& request, std::string_view job_id,
                               unsigned attempt) {
        return Event{.kind = kind,
                     .method = request.method_name(),
                     .target = request.target(),
                     .job_id = job_id,
                     .attempt = attempt};
    }

    /// Hands an event to ClientOptions::on_event, which is set. What the handler throws is dropped:
    /// observing must not change the outcome.
    void emit(const Event& event) const noexcept {
        try {
            options_.on_event(event);
        } catch (...) {
        }
    }

    template <class Options>
    static void notify(const Options& options, const ProgressEvent& event) {
        if (options.on_progress) {
            options.on_progress(event);
        }
    }

    double random_unit() { return std::uniform_real_distribution<double>(0.0, 1.0)(random_); }

    static std::uint64_t random_seed() {
        std::uint64_t seed = 0;
        random_bytes(reinterpret_cast<unsigned char*>(&seed), sizeof seed);
        return seed;
    }

    /// A public operation in progress, for the idle-connection timer.
    class OperationInProgress {
      public:
        explicit OperationInProgress(ConnectionPool& pool) : pool_(pool) { pool_.operation_started(); }
        ~OperationInProgress() { pool_.operation_finished(); }
        OperationInProgress(const OperationInProgress&) = delete;
        OperationInProgress& operator=(const OperationInProgress&) = delete;

      private:
        ConnectionPool& pool_;
    };

    boost::asio::any_io_executor executor_;
    const ClientOptions& options_;
    Transport transport_;
    Configuration configuration_{};
    std::optional<Error> configuration_error_{};
    std::mt19937_64 random_{random_seed()};
    Pacer create_pacer_;
    Pacer poll_pacer_;
    /// The ledger entries this Client's runs and resumes are working on, which `resume` leaves alone.
    std::unordered_set<EntryId> entries_in_hand_;
};

}  // namespace perplexity::detail
