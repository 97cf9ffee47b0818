/// @file
/// MemoryLedger, a Ledger kept in the process's memory: for tests, and for programs that want
/// `Client::resume` within one process's life (e.g. after cancelling their waits) but no durability.
#pragma once

#include <perplexity/error.hpp>
#include <perplexity/expected.hpp>
#include <perplexity/ledger.hpp>

#include <boost/asio/awaitable.hpp>

#include <algorithm>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace perplexity {

/// A Ledger in memory: nothing survives the process. Thread-safe, so one MemoryLedger may serve
/// Clients on several threads.
class MemoryLedger final : public Ledger {
  public:
    boost::asio::awaitable<expected<EntryId, Error>> add(LedgerIntent intent) override {
        co_return add_now(std::move(intent));
    }

    boost::asio::awaitable<std::optional<Error>> update(EntryId entry, LedgerUpdate update) override {
        co_return update_now(entry, std::move(update));
    }

    boost::asio::awaitable<expected<std::vector<LedgerEntry>, Error>> find(LedgerQuery query) override {
        co_return find_now(query);
    }

    /// `add`, synchronously.
    expected<EntryId, Error> add_now(LedgerIntent intent) {
        const std::lock_guard lock(mutex_);
        if (refusal_) {
            return unexpected(refused("record the intent of a create"));
        }
        LedgerEntry entry;
        entry.id = static_cast<EntryId>(entries_.size()) + 1;
        entry.api = intent.api;
        entry.label = std::move(intent.label);
        entry.request = std::move(intent.request);
        entry.idempotency_key = std::move(intent.idempotency_key);
        entry.created_at = entry.updated_at = intent.at;
        entries_.push_back(std::move(entry));
        return entries_.back().id;
    }

    /// `update`, synchronously.
    std::optional<Error> update_now(EntryId entry, LedgerUpdate update) {
        const std::lock_guard lock(mutex_);
        if (refusal_) {
            return refused("record an update of entry " + std::to_string(entry));
        }
        if (entry < 1 || entry > static_cast<EntryId>(entries_.size())) {
            return Error{.kind = ErrorKind::ledger,
                         .message = "the in-memory ledger has no entry " + std::to_string(entry)};
        }
        LedgerEntry& target = entries_[static_cast<std::size_t>(entry - 1)];
        if (update.state) {
            target.state = *update.state;
        }
        if (update.job_id) {
            target.job_id = std::move(*update.job_id);
        }
        if (update.status) {
            target.status = std::move(*update.status);
        }
        if (update.result) {
            target.result = std::move(*update.result);
        }
        if (update.error) {
            target.error = std::move(*update.error);
        }
        target.updated_at = update.at;
        return std::nullopt;
    }

    /// `find`, synchronously.
    expected<std::vector<LedgerEntry>, Error> find_now(const LedgerQuery& query) const {
        const std::lock_guard lock(mutex_);
        std::vector<LedgerEntry> found;
        for (const LedgerEntry& entry : entries_) {
            const bool state_matches =
                query.states.empty() ||
                std::find(query.states.begin(), query.states.end(), entry.state) != query.states.end();
            if (state_matches && (!query.id || *query.id == entry.id) &&
                (!query.label || *query.label == entry.label) &&
                (!query.job_id || *query.job_id == entry.job_id) &&
                (!query.created_before || entry.created_at < *query.created_before)) {
                found.push_back(entry);
            }
        }
        return found;
    }

    /// From now on, every `add` and `update` fails with an `ErrorKind::ledger` Error quoting `why` (as a
    /// full disk would), until `accept_writes`. For tests of what a Client does when it cannot record.
    void refuse_writes(std::string why) {
        const std::lock_guard lock(mutex_);
        refusal_ = std::move(why);
    }

    /// Ends `refuse_writes`.
    void accept_writes() {
        const std::lock_guard lock(mutex_);
        refusal_.reset();
    }

  private:
    Error refused(const std::string& what) const {
        return Error{.kind = ErrorKind::ledger,
                     .message = "the in-memory ledger could not " + what + ": " + *refusal_};
    }

    mutable std::mutex mutex_;
    std::vector<LedgerEntry> entries_;
    std::optional<std::string> refusal_;
};

}  // namespace perplexity
