// The simulator's jobs: their lifecycle and their JSON renderings.
//
// Jobs advance only when somebody looks at them (a GET of that job), never on a timer. That keeps the
// simulator free of background work, and lets tests pin exactly how many polls a client needs.
#pragma once

#include <perplexity_sim/answer_text.hpp>
#include <perplexity_sim/options.hpp>

#include <boost/json.hpp>

#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace perplexity_sim::detail {

enum class JobStatus { created, in_progress, completed, failed };

inline const char* to_string(JobStatus status) {
    switch (status) {
        case JobStatus::created:
            return "CREATED";
        case JobStatus::in_progress:
            return "IN_PROGRESS";
        case JobStatus::completed:
            return "COMPLETED";
        case JobStatus::failed:
            return "FAILED";
    }
    return "UNKNOWN";
}

inline std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// What the create call hands over; the store never sees the raw request.
struct JobInput {
    std::string model;
    std::string question;  // text of the last user message, echoed in the answer
    std::size_t prompt_chars = 0;
    bool force_failure = false;
};

struct Job {
    std::string id;
    JobInput input;
    JobStatus status = JobStatus::created;
    bool will_fail = false;
    std::int64_t created_at = 0;
    std::optional<std::int64_t> started_at;
    std::optional<std::int64_t> completed_at;
    std::optional<std::int64_t> failed_at;
    std::chrono::steady_clock::time_point created_clock;
    std::chrono::steady_clock::time_point started_clock;
    unsigned shown_created = 0;
    unsigned shown_in_progress = 0;
    boost::json::value response;  // null until COMPLETED
};

inline constexpr std::string_view failure_message = "Internal error while processing request";

class JobStore {
  public:
    explicit JobStore(const SimulatorOptions& options)
        : options_(options),
          failure_rng_(options.seed),
          id_rng_(options.seed ^ 0x9e3779b97f4a7c15ULL),
          failure_draw_(0.0, 1.0) {}

    struct CreateResult {
        Job* job;
        bool created;  // false when an idempotency key replayed an existing job
    };

    CreateResult create(JobInput input, const std::optional<std::string>& idempotency_key) {
        if (idempotency_key) {
            if (auto it = by_idempotency_key_.find(*idempotency_key); it != by_idempotency_key_.end()) {
                return {&jobs_[it->second], false};
            }
        }
        Job job;
        job.id = new_uuid();
        // Drawn for every job, forced failures included, so the seeded sequence does not depend on prompts.
        const bool unlucky = failure_draw_(failure_rng_) < options_.failure_ratio;
        job.will_fail = unlucky || input.force_failure;
        job.input = std::move(input);
        job.created_at = unix_now();
        job.created_clock = std::chrono::steady_clock::now();
        const std::size_t index = jobs_.size();
        by_id_.emplace(job.id, index);
        if (idempotency_key) {
            by_idempotency_key_.emplace(*idempotency_key, index);
        }
        jobs_.push_back(std::move(job));
        ++jobs_created_;
        return {&jobs_.back(), true};
    }

    Job* find(const std::string& id) {
        auto it = by_id_.find(id);
        return it == by_id_.end() ? nullptr : &jobs_[it->second];
    }

    std::size_t size() const { return jobs_.size(); }
    std::size_t jobs_created() const { return jobs_created_; }

    // 0 is the newest job, the order the list endpoint pages through.
    const Job& newest(std::size_t index) const { return jobs_[jobs_.size() - 1 - index]; }

    // A GET of the job: advance as far as both budgets allow (possibly through several stages at once), then
    // count this answer against the stage it shows.
    void observe(Job& job) {
        const auto now = std::chrono::steady_clock::now();
        if (job.status == JobStatus::created && job.shown_created >= options_.created_polls &&
            now - job.created_clock >= options_.created_for) {
            job.status = JobStatus::in_progress;
            job.started_at = unix_now();
            job.started_clock = now;
        }
        if (job.status == JobStatus::in_progress && job.shown_in_progress >= options_.in_progress_polls &&
            now - job.started_clock >= options_.in_progress_for) {
            finish(job);
        }
        if (job.status == JobStatus::created) {
            ++job.shown_created;
        } else if (job.status == JobStatus::in_progress) {
            ++job.shown_in_progress;
        }
    }

    // Same key order as the real API's job bodies.
    static boost::json::object to_json(const Job& job) {
        boost::json::object out;
        add_common_fields(out, job);
        out["response"] = job.response;
        out["error_message"] = job.status == JobStatus::failed ? boost::json::value(failure_message)
                                                               : boost::json::value(nullptr);
        out["status"] = to_string(job.status);
        return out;
    }

    // List items: the job without response and error_message.
    static boost::json::object summary_json(const Job& job) {
        boost::json::object out;
        add_common_fields(out, job);
        out["status"] = to_string(job.status);
        return out;
    }

  private:
    static void add_common_fields(boost::json::object& out, const Job& job) {
        auto optional_time = [](const std::optional<std::int64_t>& t) {
            return t ? boost::json::value(*t) : boost::json::value(nullptr);
        };
        out["id"] = job.id;
        out["model"] = job.input.model;
        out["created_at"] = job.created_at;
        out["started_at"] = optional_time(job.started_at);
        out["completed_at"] = optional_time(job.completed_at);
        out["failed_at"] = optional_time(job.failed_at);
    }

    void finish(Job& job) {
        const auto now = unix_now();
        if (job.will_fail) {
            job.status = JobStatus::failed;
            job.failed_at = now;
            return;
        }
        job.status = JobStatus::completed;
        job.completed_at = now;
        job.response = make_completion(job, now);
    }

    std::string new_uuid() {
        std::array<unsigned char, 16> bytes{};
        for (std::size_t i = 0; i < bytes.size(); i += 8) {
            std::uint64_t word = id_rng_();
            for (std::size_t j = 0; j < 8; ++j) {
                bytes[i + j] = static_cast<unsigned char>(word >> (8 * j));
            }
        }
        bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0f) | 0x40);  // version 4
        bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3f) | 0x80);  // RFC 4122 variant
        static constexpr char hex[] = "0123456789abcdef";
        std::string out;
        out.reserve(36);
        for (std::size_t i = 0; i < bytes.size(); ++i) {
            if (i == 4 || i == 6 || i == 8 || i == 10) {
                out.push_back('-');
            }
            out.push_back(hex[bytes[i] >> 4]);
            out.push_back(hex[bytes[i] & 0x0f]);
        }
        return out;
    }

    // Cost figures are rounded so they print like dollar amounts rather than binary fractions.
    static double dollars(double value) { return std::round(value * 1e8) / 1e8; }

    boost::json::object make_completion(const Job& job, std::int64_t now) {
        const std::string& question = job.input.question;
        std::string content;
        if (shows_thinking(job.input.model)) {
            content = "<think>" + thinking_about(question) + "</think>\n\n";
        }
        const std::size_t think_bytes = content.size();
        content += answer_to(question).text;
        pad_to(content, options_.answer_bytes);

        boost::json::array citations;
        boost::json::array search_results;
        for (std::size_t i = 0; i < sources.size(); ++i) {
            const std::string url = source_url(i, job.id);
            citations.emplace_back(url);
            search_results.emplace_back(boost::json::object{{"title", sources[i].title},
                                                            {"url", url},
                                                            {"date", sources[i].date},
                                                            {"last_updated", sources[i].last_updated},
                                                            {"snippet", sources[i].snippet},
                                                            {"source", "web"}});
        }

        const std::int64_t prompt_tokens = static_cast<std::int64_t>(job.input.prompt_chars / 4 + 1);
        const std::int64_t completion_tokens =
            static_cast<std::int64_t>((content.size() - think_bytes) / 4 + 1);
        // A model that shows no thinking spends no reasoning tokens, as the real non-reasoning ones.
        const std::int64_t reasoning_tokens =
            think_bytes == 0 ? 0 : static_cast<std::int64_t>(think_bytes / 4 + 1) * 8;
        const std::int64_t citation_tokens = 240;
        const std::int64_t search_queries = 2;

        const double input_cost = dollars(static_cast<double>(prompt_tokens) * 2e-6);
        const double output_cost = dollars(static_cast<double>(completion_tokens) * 8e-6);
        const double citation_cost = dollars(static_cast<double>(citation_tokens) * 2e-6);
        const double reasoning_cost = dollars(static_cast<double>(reasoning_tokens) * 3e-6);
        const double search_cost = dollars(static_cast<double>(search_queries) * 5e-3);
        const double total_cost =
            dollars(input_cost + output_cost + citation_cost + reasoning_cost + search_cost);

        boost::json::object message{{"role", "assistant"}, {"content", std::move(content)}};
        boost::json::object delta{{"role", "assistant"}, {"content", ""}};
        boost::json::object choice{{"index", 0},
                                   {"finish_reason", "stop"},
                                   {"message", std::move(message)},
                                   {"delta", std::move(delta)}};

        boost::json::object cost{{"input_tokens_cost", input_cost},
                                 {"output_tokens_cost", output_cost},
                                 {"citation_tokens_cost", citation_cost},
                                 {"reasoning_tokens_cost", reasoning_cost},
                                 {"search_queries_cost", search_cost},
                                 {"request_cost", nullptr},
                                 {"total_cost", total_cost}};
        boost::json::object usage{{"prompt_tokens", prompt_tokens},
                                  {"completion_tokens", completion_tokens},
                                  {"total_tokens", prompt_tokens + completion_tokens},
                                  {"citation_tokens", citation_tokens},
                                  {"num_search_queries", search_queries},
                                  {"reasoning_tokens", reasoning_tokens},
                                  {"search_context_size", "low"},
                                  {"cost", std::move(cost)}};

        return boost::json::object{{"id", new_uuid()},
                                   {"model", job.input.model},
                                   {"created", now},
                                   {"object", "chat.completion"},
                                   {"choices", boost::json::array{std::move(choice)}},
                                   {"citations", std::move(citations)},
                                   {"search_results", std::move(search_results)},
                                   {"usage", std::move(usage)}};
    }

    SimulatorOptions options_;
    std::mt19937_64 failure_rng_;
    std::mt19937_64 id_rng_;
    std::uniform_real_distribution<double> failure_draw_;
    std::deque<Job> jobs_;  // creation order; a deque keeps Job pointers stable as it grows
    std::unordered_map<std::string, std::size_t> by_id_;
    std::unordered_map<std::string, std::size_t> by_idempotency_key_;
    std::size_t jobs_created_ = 0;
};

}  // namespace perplexity_sim::detail
