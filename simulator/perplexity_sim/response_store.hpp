// The Agent API's background responses (POST /v1/responses): their lifecycle and their JSON rendering.
//
// Like the Sonar jobs, a response advances only when somebody retrieves it, never on a timer: queued, then
// in_progress, then a final status. Cancellation is asynchronous: the cancel call is acknowledged, and a
// later retrieve (SimulatorOptions::cancel_polls) shows `cancelled`.
#pragma once

#include <perplexity_sim/agent_request.hpp>
#include <perplexity_sim/answer_text.hpp>
#include <perplexity_sim/job_store.hpp>
#include <perplexity_sim/options.hpp>

#include <boost/json.hpp>

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

// `other` is a status the API does not define, asked for with [[status:NAME]] in the input.
enum class ResponseStatus {
    queued,
    in_progress,
    completed,
    failed,
    cancelled,
    incomplete,
    requires_action,
    other
};

inline const char* to_string(ResponseStatus status) {
    switch (status) {
        case ResponseStatus::queued:
            return "queued";
        case ResponseStatus::in_progress:
            return "in_progress";
        case ResponseStatus::completed:
            return "completed";
        case ResponseStatus::failed:
            return "failed";
        case ResponseStatus::cancelled:
            return "cancelled";
        case ResponseStatus::incomplete:
            return "incomplete";
        case ResponseStatus::requires_action:
            return "requires_action";
        case ResponseStatus::other:
            return "other";
    }
    return "other";
}

// Final on the server: the run has stopped and cannot be cancelled any more.
inline bool is_final(ResponseStatus status) {
    return status == ResponseStatus::completed || status == ResponseStatus::failed ||
           status == ResponseStatus::cancelled || status == ResponseStatus::incomplete ||
           status == ResponseStatus::requires_action;
}

struct StoredResponse {
    std::string id;
    AgentRequest request;
    ResponseStatus status = ResponseStatus::queued;
    std::string other_status;  // the name shown for ResponseStatus::other
    bool will_fail = false;
    bool will_be_incomplete = false;
    std::optional<std::string> forced_status;  // from [[status:NAME]]
    std::int64_t created_at = 0;
    std::chrono::steady_clock::time_point created_clock;
    std::chrono::steady_clock::time_point started_clock;
    unsigned shown_queued = 0;
    unsigned shown_in_progress = 0;
    bool cancel_requested = false;
    unsigned shown_since_cancel = 0;
    boost::json::array output;
    boost::json::value usage;  // null until the run has produced output
};

// The text between "[[status:" and "]]" of the input, when there is any.
inline std::optional<std::string> forced_status_of(std::string_view text) {
    constexpr std::string_view open = "[[status:";
    const auto start = text.find(open);
    if (start == std::string_view::npos) {
        return std::nullopt;
    }
    const auto name_start = start + open.size();
    const auto end = text.find("]]", name_start);
    if (end == std::string_view::npos || end == name_start) {
        return std::nullopt;
    }
    return std::string(text.substr(name_start, end - name_start));
}

class ResponseStore {
  public:
    explicit ResponseStore(const SimulatorOptions& options)
        : options_(options),
          // Streams of their own, so adding responses never shifts the Sonar jobs' seeded sequences.
          failure_rng_(options.seed ^ 0x5bd1e9955bd1e995ULL),
          id_rng_(options.seed ^ 0xc2b2ae3d27d4eb4fULL),
          failure_draw_(0.0, 1.0) {}

    // A create without `background: true` runs to its end before the create answers.
    StoredResponse& create(AgentRequest request) {
        StoredResponse response;
        response.id = "resp_" + random_hex(32);
        // Drawn for every response, forced failures included, so the sequence does not depend on inputs.
        const bool unlucky = failure_draw_(failure_rng_) < options_.failure_ratio;
        const std::string& question = request.question;
        response.will_fail = unlucky || question.find("[[fail]]") != std::string::npos;
        response.will_be_incomplete = question.find("[[incomplete]]") != std::string::npos;
        response.forced_status = forced_status_of(question);
        response.request = std::move(request);
        response.created_at = unix_now();
        response.created_clock = std::chrono::steady_clock::now();
        const bool visible = response.request.store.value_or(true);
        responses_.push_back(std::move(response));
        StoredResponse& stored = responses_.back();
        if (visible) {
            by_id_.emplace(stored.id, responses_.size() - 1);
        }
        ++responses_created_;
        if (!stored.request.background) {
            finish(stored);
        }
        return stored;
    }

    // nullptr for unknown ids and for responses created with `store: false`.
    StoredResponse* find(const std::string& id) {
        auto it = by_id_.find(id);
        return it == by_id_.end() ? nullptr : &responses_[it->second];
    }

    // A retrieve: advance as far as both budgets allow, then count this answer against the status it shows.
    void observe(StoredResponse& response) {
        if (is_final(response.status)) {
            return;
        }
        if (response.cancel_requested) {
            if (response.shown_since_cancel >= options_.cancel_polls) {
                response.status = ResponseStatus::cancelled;
            } else {
                ++response.shown_since_cancel;
            }
            return;
        }
        const auto now = std::chrono::steady_clock::now();
        if (response.status == ResponseStatus::queued && response.shown_queued >= options_.created_polls &&
            now - response.created_clock >= options_.created_for) {
            response.status = ResponseStatus::in_progress;
            response.started_clock = now;
        }
        if (response.status == ResponseStatus::in_progress &&
            response.shown_in_progress >= options_.in_progress_polls &&
            now - response.started_clock >= options_.in_progress_for) {
            finish(response);
        }
        if (response.status == ResponseStatus::queued) {
            ++response.shown_queued;
        } else if (response.status == ResponseStatus::in_progress) {
            ++response.shown_in_progress;
        }
    }

    enum class CancelResult { accepted, already_final };

    // Only marks the response; a later observe() shows it cancelled.
    CancelResult cancel(StoredResponse& response) {
        if (is_final(response.status)) {
            return CancelResult::already_final;
        }
        if (!response.cancel_requested) {
            response.cancel_requested = true;
            ++responses_cancelled_;
        }
        return CancelResult::accepted;
    }

    std::size_t responses_created() const { return responses_created_; }
    std::size_t responses_cancelled() const { return responses_cancelled_; }

    static std::string status_name(const StoredResponse& response) {
        return response.status == ResponseStatus::other ? response.other_status : to_string(response.status);
    }

    static boost::json::object to_json(const StoredResponse& response) {
        boost::json::object out;
        out["id"] = response.id;
        out["object"] = "response";
        out["created_at"] = response.created_at;
        out["model"] = response.request.model;
        out["status"] = status_name(response);
        out["background"] = response.request.background;
        if (response.request.store) {
            out["store"] = *response.request.store;
        }
        if (response.request.previous_response_id) {
            out["previous_response_id"] = *response.request.previous_response_id;
        }
        out["output"] = response.output;
        if (response.status == ResponseStatus::failed) {
            out["error"] = boost::json::object{
                {"message", failure_message}, {"type", "server_error"}, {"code", "internal_error"}};
        } else if (response.status == ResponseStatus::cancelled) {
            out["error"] = boost::json::object{{"message", "response was cancelled"}, {"type", "cancelled"}};
        }
        if (response.status == ResponseStatus::incomplete) {
            out["incomplete_details"] = boost::json::object{{"reason", "max_output_tokens"}};
        }
        if (!response.usage.is_null() && response.status != ResponseStatus::cancelled) {
            out["usage"] = response.usage;
        }
        return out;
    }

  private:
    void finish(StoredResponse& response) {
        if (response.will_fail) {
            response.status = ResponseStatus::failed;
            return;
        }
        if (response.forced_status) {
            response.status = ResponseStatus::other;
            response.other_status = *response.forced_status;
            return;
        }
        const AgentRequest& request = response.request;
        if (response.will_be_incomplete) {
            response.status = ResponseStatus::incomplete;
            add_answer(response, "incomplete");
            return;
        }
        if (request.function_name && !request.continuation) {
            response.status = ResponseStatus::requires_action;
            add_function_call(response);
            return;
        }
        response.status = ResponseStatus::completed;
        add_answer(response, "completed");
    }

    std::string random_hex(std::size_t digits) {
        static constexpr char hex[] = "0123456789abcdef";
        std::string out;
        out.reserve(digits);
        std::uint64_t word = 0;
        for (std::size_t i = 0; i < digits; ++i) {
            if (i % 16 == 0) {
                word = id_rng_();
            }
            out.push_back(hex[word & 0x0f]);
            word >>= 4;
        }
        return out;
    }

    static double dollars(double value) { return std::round(value * 1e8) / 1e8; }

    // Characters rather than bytes, as the annotation offsets of a JSON text count them.
    static std::int64_t characters(std::string_view text) {
        std::int64_t count = 0;
        for (const char c : text) {
            count += (static_cast<unsigned char>(c) & 0xc0) != 0x80 ? 1 : 0;
        }
        return count;
    }

    static boost::json::object search_results_item(const StoredResponse& response) {
        boost::json::array results;
        for (std::size_t i = 0; i < sources.size(); ++i) {
            results.emplace_back(boost::json::object{{"title", sources[i].title},
                                                     {"url", source_url(i, response.id)},
                                                     {"date", sources[i].date},
                                                     {"last_updated", sources[i].last_updated},
                                                     {"snippet", sources[i].snippet},
                                                     {"source", "web"}});
        }
        return boost::json::object{{"type", "search_results"},
                                   {"results", std::move(results)},
                                   {"queries", boost::json::array{response.request.question}}};
    }

    // One url_citation per source, on the first of its markers in the answer: what the Agent API's
    // annotations point at. A marker the answer was cut before has none.
    static boost::json::array citation_annotations(const StoredResponse& response, const AnswerText& answer) {
        boost::json::array annotations;
        for (std::size_t i = 0; i < sources.size(); ++i) {
            const std::string marker = "[" + std::to_string(i + 1) + "]";
            const std::size_t at = answer.text.find(marker, answer.after_question);
            if (at == std::string::npos) {
                continue;
            }
            const std::int64_t start = characters(std::string_view(answer.text).substr(0, at));
            annotations.push_back(boost::json::object{{"type", "url_citation"},
                                                      {"url", source_url(i, response.id)},
                                                      {"title", sources[i].title},
                                                      {"start_index", start},
                                                      {"end_index", start + characters(marker)}});
        }
        return annotations;
    }

    void add_answer(StoredResponse& response, std::string_view message_status) {
        const AgentRequest& request = response.request;
        // Without a <think> block: nothing known of the Agent API puts one in its output_text.
        AnswerText answer = answer_to(request.question);
        std::optional<std::size_t> target = options_.answer_bytes;
        if (message_status == "incomplete") {
            cut_short(answer);
            if (target) {
                *target /= 2;
            }
        }
        pad_to(answer.text, target);
        boost::json::array annotations;
        if (request.web_search) {
            annotations = citation_annotations(response, answer);
            response.output.push_back(search_results_item(response));
        }
        std::string text = std::move(answer.text);
        const std::int64_t output_tokens = static_cast<std::int64_t>(text.size() / 4 + 1);
        boost::json::object part{
            {"type", "output_text"}, {"text", std::move(text)}, {"annotations", std::move(annotations)}};
        response.output.push_back(boost::json::object{{"type", "message"},
                                                      {"id", "msg_" + random_hex(24)},
                                                      {"role", "assistant"},
                                                      {"status", message_status},
                                                      {"content", boost::json::array{std::move(part)}}});
        set_usage(response, output_tokens);
    }

    void add_function_call(StoredResponse& response) {
        const std::string arguments =
            boost::json::serialize(boost::json::object{{"query", response.request.question}});
        const std::int64_t output_tokens = static_cast<std::int64_t>(arguments.size() / 4 + 1);
        response.output.push_back(boost::json::object{{"type", "function_call"},
                                                      {"id", "fc_" + random_hex(24)},
                                                      {"call_id", "call_" + random_hex(24)},
                                                      {"name", *response.request.function_name},
                                                      {"arguments", arguments},
                                                      {"status", "completed"}});
        set_usage(response, output_tokens);
    }

    static void set_usage(StoredResponse& response, std::int64_t output_tokens) {
        const std::int64_t input_tokens = static_cast<std::int64_t>(response.request.prompt_chars / 4 + 1);
        const std::int64_t searches = response.request.web_search ? 2 : 0;
        const double input_cost = dollars(static_cast<double>(input_tokens) * 2e-6);
        const double output_cost = dollars(static_cast<double>(output_tokens) * 8e-6);
        const double tool_calls_cost = dollars(static_cast<double>(searches) * 5e-3);
        boost::json::object cost{{"currency", "USD"},
                                 {"input_cost", input_cost},
                                 {"output_cost", output_cost},
                                 {"total_cost", dollars(input_cost + output_cost + tool_calls_cost)},
                                 {"tool_calls_cost", tool_calls_cost}};
        boost::json::object usage{{"input_tokens", input_tokens},
                                  {"output_tokens", output_tokens},
                                  {"total_tokens", input_tokens + output_tokens},
                                  {"cost", std::move(cost)}};
        if (response.request.web_search) {
            usage["tool_calls_details"] =
                boost::json::object{{"web_search", boost::json::object{{"invocation", searches}}}};
        }
        response.usage = std::move(usage);
    }

    SimulatorOptions options_;
    std::mt19937_64 failure_rng_;
    std::mt19937_64 id_rng_;
    std::uniform_real_distribution<double> failure_draw_;
    std::deque<StoredResponse> responses_;  // creation order; a deque keeps references stable as it grows
    std::unordered_map<std::string, std::size_t> by_id_;
    std::size_t responses_created_ = 0;
    std::size_t responses_cancelled_ = 0;
};

}  // namespace perplexity_sim::detail
