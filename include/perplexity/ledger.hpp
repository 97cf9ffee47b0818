/// @file
/// Ledger, the durable record of the jobs `Client::run` and `Client::run_response` pay for, and what
/// it holds. With a ledger in ClientOptions::ledger, a run records its intent before the create leaves,
/// the job id as soon as the create is answered, and the outcome; after a crash or a restart,
/// `Client::resume` carries every unfinished entry on. The SQLite ledger is in
/// `<perplexity/sqlite_ledger.hpp>`, the in-memory one in `<perplexity/memory_ledger.hpp>`; this header
/// needs neither.
#pragma once

#include <perplexity/error.hpp>
#include <perplexity/expected.hpp>

#include <boost/asio/awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace perplexity {

/// Which API an entry's job belongs to.
enum class LedgerApi {
    /// A Sonar async chat completion job (`Client::run`).
    sonar,
    /// An Agent API background response (`Client::run_response`).
    agent,
};

/// Whether this process may act on an entry it took in hand (`Ledger::holding`).
enum class EntryHold {
    /// It is this process's: wait on its job, record what becomes of it.
    held,
    /// Unknown for now: another process may have taken it over. A Client holds off its polls, asking
    /// again at each poll interval, and ends the wait at its deadline without cancelling the job.
    unsure,
    /// Another process took it over and carries it on: stop, record nothing (ErrorKind::taken_over).
    taken,
};

/// Where an entry stands.
enum class EntryState {
    /// The intent is recorded and the create may have been sent, but no job id is known: a crash came
    /// before the answer, or every attempt failed in a way that leaves a job possible. `Client::resume`
    /// creates a Sonar job again with the entry's idempotency key (the API then answers with the job
    /// the key made, if any); an Agent API entry has no key and is reported instead.
    pending,
    /// The job exists (its id is recorded) and has not been seen to end. `Client::resume` waits on it.
    running,
    /// The job ended with an answer: COMPLETED, or for the Agent API `completed`, `requires_action` or
    /// `incomplete`. `result` holds it.
    completed,
    /// The job ended without an answer, or can never have one: FAILED (Agent API: `failed` or
    /// `cancelled`), unknown to the API (404), or refused before any job existed. `error` says why.
    failed,
    /// Given up by the caller on resume (ResumeOptions::keep); never carried on again.
    dropped,
};

/// The API's name, "sonar" or "agent"; the text the SQLite ledger stores.
constexpr const char* to_string(LedgerApi api) noexcept {
    return api == LedgerApi::agent ? "agent" : "sonar";
}

/// The state's name, e.g. "running"; the text the SQLite ledger stores.
constexpr const char* to_string(EntryState state) noexcept {
    switch (state) {
        case EntryState::pending:
            return "pending";
        case EntryState::running:
            return "running";
        case EntryState::completed:
            return "completed";
        case EntryState::failed:
            return "failed";
        case EntryState::dropped:
            return "dropped";
    }
    return "unknown";
}

/// The state named `text` (as `to_string` writes it), or nullopt.
constexpr std::optional<EntryState> entry_state_from_string(std::string_view text) noexcept {
    for (const EntryState state : {EntryState::pending, EntryState::running, EntryState::completed,
                                   EntryState::failed, EntryState::dropped}) {
        if (text == to_string(state)) {
            return state;
        }
    }
    return std::nullopt;
}

/// The API named `text` ("sonar" or "agent"), or nullopt.
constexpr std::optional<LedgerApi> ledger_api_from_string(std::string_view text) noexcept {
    if (text == "sonar") {
        return LedgerApi::sonar;
    }
    if (text == "agent") {
        return LedgerApi::agent;
    }
    return std::nullopt;
}

/// True for the states `Client::resume` carries on: pending and running.
constexpr bool is_unfinished(EntryState state) noexcept {
    return state == EntryState::pending || state == EntryState::running;
}

/// A ledger's own number for an entry, unique within the ledger and never reused.
using EntryId = std::int64_t;

/// What a run records before its create is sent.
struct LedgerIntent {
    /// The API the create goes to.
    LedgerApi api = LedgerApi::sonar;
    /// The caller's name for the job (WaitOptions::label), to match a resumed entry with what asked for
    /// it; may be empty and need not be unique.
    std::string label{};
    /// The request as JSON text: the ChatRequest for Sonar (the `request` member of the create's body),
    /// the whole create body for the Agent API. Never holds the API key.
    std::string request{};
    /// The create's idempotency key; empty for the Agent API, which has none.
    std::string idempotency_key{};
    /// When the intent was made.
    std::chrono::system_clock::time_point at{};
};

/// A change to an entry: only the members that are set change.
struct LedgerUpdate {
    /// The entry's new state.
    std::optional<EntryState> state{};
    /// The job id, once the create has been answered.
    std::optional<std::string> job_id{};
    /// The job's status as last seen, in the API's words (e.g. "IN_PROGRESS", "queued").
    std::optional<std::string> status{};
    /// The job (or response) as JSON text, once it ended.
    std::optional<std::string> result{};
    /// Why the entry failed, or the Error that ended the last wait on it (an unfinished entry keeps it
    /// as a note: a deadline, a cancelled wait, a network failure).
    std::optional<std::string> error{};
    /// When the change was seen.
    std::chrono::system_clock::time_point at{};
    /// Whether the change must be on stable storage before `update` returns. Statuses seen while
    /// polling are not (a crash only means polling once more on resume); the job id and the outcome are.
    bool durable = true;
};

/// One entry, as a ledger holds it.
struct LedgerEntry {
    /// The ledger's number for it.
    EntryId id = 0;
    /// The API its job belongs to.
    LedgerApi api = LedgerApi::sonar;
    /// Where it stands.
    EntryState state = EntryState::pending;
    /// The caller's name for it (WaitOptions::label, ResponseWaitOptions::label).
    std::string label{};
    /// The request as JSON text (see LedgerIntent::request).
    std::string request{};
    /// The create's idempotency key; empty for the Agent API.
    std::string idempotency_key{};
    /// The job (or response) id; empty while pending.
    std::string job_id{};
    /// The status as last recorded; empty before the create was answered.
    std::string status{};
    /// The ended job (or response) as JSON text: a Job for Sonar, a Response for the Agent API.
    std::string result{};
    /// Why it failed, or a note on the last wait's Error while unfinished.
    std::string error{};
    /// When the intent was recorded.
    std::chrono::system_clock::time_point created_at{};
    /// When it last changed.
    std::chrono::system_clock::time_point updated_at{};

    /// Member-wise equality.
    friend bool operator==(const LedgerEntry&, const LedgerEntry&) = default;
};

/// Which entries `Ledger::find` returns; an unset member does not filter.
struct LedgerQuery {
    /// Only entries in one of these states; all states when empty.
    std::vector<EntryState> states{};
    /// Only the entry with this id.
    std::optional<EntryId> id{};
    /// Only entries with this label.
    std::optional<std::string> label{};
    /// Only the entries whose job (or response) has this id.
    std::optional<std::string> job_id{};
    /// Only entries created before this time (e.g. the stale ones among the unfinished).
    std::optional<std::chrono::system_clock::time_point> created_before{};
};

/// Where a Client records its runs. Implementations: SqliteLedger (a file, durable), MemoryLedger
/// (tests, and programs that need no durability); a fleet's ledger can be a database server.
///
/// Contract: `add` and a `durable` `update` return only once what they recorded survives a crash of the
/// process (and, for a durable implementation, of the machine, as far as its documentation says);
/// a failure is an `ErrorKind::ledger` Error saying what and why, and records nothing. A Client calls
/// them on its executor and awaits each before going on; the awaitables may complete on another thread's
/// work, but must resume the caller on its executor (as any Asio awaitable does). `find` returns entries
/// in increasing id order. Entries are never removed by the Client.
class Ledger {
  public:
    virtual ~Ledger() = default;

    /// Records a new pending entry and returns its id.
    virtual boost::asio::awaitable<expected<EntryId, Error>> add(LedgerIntent intent) = 0;
    /// Applies `update` to entry `entry`; nullopt when done, else why not (an unknown entry included).
    virtual boost::asio::awaitable<std::optional<Error>> update(EntryId entry, LedgerUpdate update) = 0;
    /// The entries `query` selects, by increasing id.
    virtual boost::asio::awaitable<expected<std::vector<LedgerEntry>, Error>> find(LedgerQuery query) = 0;

    /// The unfinished entries `query` selects that this process may carry on, taken in hand, by
    /// increasing id; what `Client::resume` carries on. A ledger of one process owns every entry, so the
    /// default is `find` of the unfinished ones. A fleet's ledger returns those it already holds and
    /// those whose holder's lease expired, which it makes its own atomically: two processes never get
    /// the same entry.
    virtual boost::asio::awaitable<expected<std::vector<LedgerEntry>, Error>> claim(LedgerQuery query) {
        std::vector<EntryState> unfinished;
        for (const EntryState state : {EntryState::pending, EntryState::running}) {
            if (query.states.empty() ||
                std::find(query.states.begin(), query.states.end(), state) != query.states.end()) {
                unfinished.push_back(state);
            }
        }
        if (unfinished.empty()) {
            co_return std::vector<LedgerEntry>{};
        }
        query.states = std::move(unfinished);
        co_return co_await find(std::move(query));
    }

    /// Whether this process holds `entry` now, cheaply and without waiting; a Client asks before every
    /// poll of the entry's job. A ledger of one process always holds its entries: the default. A
    /// fleet's ledger answers `taken` once another replica took the entry over, and `unsure` while its
    /// lease is not confirmed (it ran out without a renewal, the database being out of reach, say).
    virtual EntryHold holding(EntryId entry) const noexcept {
        (void)entry;
        return EntryHold::held;
    }
};

}  // namespace perplexity
