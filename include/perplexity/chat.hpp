// perplexity-async: chat requests and chat completions (the `request` and `response` of a job).
//
// Every field of the API contract has a typed member. What the API may add later stays reachable:
// a request's `extra_params` are merged into what is sent, and a completion keeps its raw JSON.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace perplexity {

/// One part of a multi-part message content, e.g. `{"type": "text", "text": "..."}` or an image.
struct ContentPart {
    std::string type = "text";
    std::optional<std::string> text{};
    /// The `image_url.url` of an `image_url` part.
    std::optional<std::string> image_url{};

    friend bool operator==(const ContentPart&, const ContentPart&) = default;
};

/// A message's content: null (monostate), plain text, or a list of parts.
using MessageContent = std::variant<std::monostate, std::string, std::vector<ContentPart>>;

/// A chat message, as sent in a request and as returned in a completion.
struct Message {
    /// "system", "user", "assistant" or "tool".
    std::string role{};
    MessageContent content{};
    /// Returned by some models; kept as JSON since its shape is not part of the contract.
    std::optional<boost::json::value> reasoning_steps{};
    std::optional<boost::json::value> tool_calls{};
    std::optional<std::string> tool_call_id{};

    /// The content as text: the string itself, or the text parts joined; empty for null content.
    std::string text() const {
        if (const auto* text = std::get_if<std::string>(&content)) {
            return *text;
        }
        std::string joined;
        if (const auto* parts = std::get_if<std::vector<ContentPart>>(&content)) {
            for (const ContentPart& part : *parts) {
                if (part.text) {
                    joined += *part.text;
                }
            }
        }
        return joined;
    }

    friend bool operator==(const Message&, const Message&) = default;
};

/// The two halves of an answer that starts with a `<think>...</think>` block.
struct ThinkingAndAnswer {
    /// The text inside the think block (empty when there is none).
    std::string_view thinking{};
    /// Everything after the block, with leading white space removed.
    std::string_view answer{};
};

/// Splits a leading `<think>...</think>` block (as deep-research models emit) off an answer.
/// The views point into `text`. Text without a leading block is returned whole as the answer; an
/// unterminated block is all thinking and no answer.
inline ThinkingAndAnswer split_thinking(std::string_view text) noexcept {
    constexpr std::string_view open = "<think>";
    constexpr std::string_view close = "</think>";
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos || text.substr(first, open.size()) != open) {
        return {{}, text};
    }
    const auto body_start = first + open.size();
    const auto close_at = text.find(close, body_start);
    if (close_at == std::string_view::npos) {
        return {text.substr(body_start), {}};
    }
    std::string_view answer = text.substr(close_at + close.size());
    const auto answer_start = answer.find_first_not_of(" \t\r\n");
    answer = answer_start == std::string_view::npos ? std::string_view{} : answer.substr(answer_start);
    return {text.substr(body_start, close_at - body_start), answer};
}

enum class SearchMode { web, academic, sec };
enum class ReasoningEffort { low, medium, high };

constexpr const char* to_string(SearchMode mode) noexcept {
    switch (mode) {
        case SearchMode::web:
            return "web";
        case SearchMode::academic:
            return "academic";
        case SearchMode::sec:
            return "sec";
    }
    return "web";
}

constexpr const char* to_string(ReasoningEffort effort) noexcept {
    switch (effort) {
        case ReasoningEffort::low:
            return "low";
        case ReasoningEffort::medium:
            return "medium";
        case ReasoningEffort::high:
            return "high";
    }
    return "medium";
}

/// The chat parameters of a job. `model` and `messages` are required; every other typed parameter is
/// sent only when set. `extra_params` is merged last, so it can send parameters this struct does not
/// model yet, and it overrides a typed member of the same name.
struct ChatRequest {
    std::string model{};
    std::vector<Message> messages{};

    std::optional<std::int64_t> max_tokens{};
    std::optional<double> temperature{};
    std::optional<double> top_p{};
    std::optional<std::int64_t> top_k{};
    std::optional<double> presence_penalty{};
    std::optional<double> frequency_penalty{};
    std::optional<SearchMode> search_mode{};
    std::optional<std::vector<std::string>> search_domain_filter{};
    /// e.g. "day", "week", "month", "year".
    std::optional<std::string> search_recency_filter{};
    /// Dates as the API takes them, e.g. "3/1/2025".
    std::optional<std::string> search_after_date_filter{};
    std::optional<std::string> search_before_date_filter{};
    std::optional<bool> return_images{};
    std::optional<bool> return_related_questions{};
    std::optional<ReasoningEffort> reasoning_effort{};
    /// A JSON schema response format, sent as given.
    std::optional<boost::json::value> response_format{};
    /// e.g. `{"search_context_size": "high", "user_location": {...}}`, sent as given.
    std::optional<boost::json::value> web_search_options{};
    std::optional<bool> disable_search{};

    boost::json::object extra_params{};

    friend bool operator==(const ChatRequest&, const ChatRequest&) = default;
};

/// One search result a completion drew on.
struct SearchResult {
    std::string title{};
    std::string url{};
    std::optional<std::string> date{};
    std::optional<std::string> last_updated{};
    std::optional<std::string> snippet{};
    /// "web" or "attachment".
    std::optional<std::string> source{};

    friend bool operator==(const SearchResult&, const SearchResult&) = default;
};

/// What a job cost, in US dollars.
struct Cost {
    double input_tokens_cost = 0;
    double output_tokens_cost = 0;
    double total_cost = 0;
    std::optional<double> citation_tokens_cost{};
    std::optional<double> reasoning_tokens_cost{};
    std::optional<double> request_cost{};
    std::optional<double> search_queries_cost{};

    friend bool operator==(const Cost&, const Cost&) = default;
};

struct Usage {
    std::int64_t prompt_tokens = 0;
    std::int64_t completion_tokens = 0;
    std::int64_t total_tokens = 0;
    std::optional<std::int64_t> citation_tokens{};
    std::optional<std::int64_t> num_search_queries{};
    std::optional<std::int64_t> reasoning_tokens{};
    std::optional<std::string> search_context_size{};
    std::optional<Cost> cost{};

    friend bool operator==(const Usage&, const Usage&) = default;
};

struct Choice {
    std::int64_t index = 0;
    /// "stop", "length", or empty when the API sent null.
    std::optional<std::string> finish_reason{};
    Message message{};
    std::optional<Message> delta{};

    friend bool operator==(const Choice&, const Choice&) = default;
};

/// The answer of a COMPLETED job.
struct ChatCompletion {
    std::string id{};
    std::string model{};
    /// Unix seconds.
    std::int64_t created = 0;
    std::optional<std::string> object{};
    std::vector<Choice> choices{};
    std::vector<std::string> citations{};
    std::vector<SearchResult> search_results{};
    /// Kept as JSON: its shape is not part of the contract.
    std::optional<boost::json::value> images{};
    std::vector<std::string> related_questions{};
    std::optional<Usage> usage{};
    /// The completion exactly as received, so fields this library does not model stay reachable.
    boost::json::object raw{};

    /// The first choice's message text, or empty when there is no choice.
    std::string text() const { return choices.empty() ? std::string{} : choices.front().message.text(); }

    friend bool operator==(const ChatCompletion&, const ChatCompletion&) = default;
};

}  // namespace perplexity
