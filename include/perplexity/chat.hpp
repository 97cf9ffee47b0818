/// @file
/// Chat requests and chat completions (the `request` and `response` of a job).
///
/// Every field of the API contract has a typed member. What the API may add later stays reachable:
/// a request's `extra_params` are merged into what is sent, and a completion keeps its raw JSON. All
/// of these are plain values that own their members.
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
    /// The part's type as the API names it: "text", "image_url", ...
    std::string type = "text";
    /// The text of a "text" part.
    std::optional<std::string> text{};
    /// The `image_url.url` of an `image_url` part.
    std::optional<std::string> image_url{};

    /// Member-wise equality.
    friend bool operator==(const ContentPart&, const ContentPart&) = default;
};

/// A message's content: null (monostate), plain text, or a list of parts.
using MessageContent = std::variant<std::monostate, std::string, std::vector<ContentPart>>;

/// A chat message, as sent in a request and as returned in a completion.
struct Message {
    /// "system", "user", "assistant" or "tool".
    std::string role{};
    /// Null, text, or parts; a request usually sets text: `.content = "..."`.
    MessageContent content{};
    /// Returned by some models; kept as JSON since its shape is not part of the contract.
    std::optional<boost::json::value> reasoning_steps{};
    /// Tool calls of an assistant message, kept as JSON like `reasoning_steps`.
    std::optional<boost::json::value> tool_calls{};
    /// The call a "tool" message answers.
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

    /// Member-wise equality.
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
/// The views point into `text`, so the string behind `text` must outlive them: split a named string
/// (`std::string text = job->response->text();`), not the temporary that `text()` returns. Text
/// without a leading block is returned whole as the answer; an unterminated block is all thinking and
/// no answer.
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

/// `ChatRequest::search_mode`: which sources the search draws on (web, academic, SEC filings).
enum class SearchMode { web, academic, sec };
/// `ChatRequest::reasoning_effort`: how much reasoning a reasoning model spends.
enum class ReasoningEffort { low, medium, high };

/// The mode as the API spells it: "web", "academic" or "sec".
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

/// The effort as the API spells it: "low", "medium" or "high".
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
    /// The model, e.g. "sonar-deep-research". Required: an empty model is `ErrorKind::invalid_argument`.
    std::string model{};
    /// The conversation. Required: at least one message, each with a role.
    std::vector<Message> messages{};

    /// The most tokens the answer may have; must be greater than 0 when set.
    std::optional<std::int64_t> max_tokens{};
    /// Sampling temperature.
    std::optional<double> temperature{};
    /// Nucleus sampling threshold.
    std::optional<double> top_p{};
    /// Top-k sampling.
    std::optional<std::int64_t> top_k{};
    /// Penalises tokens already present.
    std::optional<double> presence_penalty{};
    /// Penalises tokens by how often they appeared.
    std::optional<double> frequency_penalty{};
    /// Which sources the search draws on.
    std::optional<SearchMode> search_mode{};
    /// Domains to limit the search to, as the API takes them.
    std::optional<std::vector<std::string>> search_domain_filter{};
    /// e.g. "day", "week", "month", "year".
    std::optional<std::string> search_recency_filter{};
    /// Dates as the API takes them, e.g. "3/1/2025".
    std::optional<std::string> search_after_date_filter{};
    /// Like `search_after_date_filter`, the other end of the range.
    std::optional<std::string> search_before_date_filter{};
    /// Ask for images in the answer (`ChatCompletion::images`).
    std::optional<bool> return_images{};
    /// Ask for follow-up questions (`ChatCompletion::related_questions`).
    std::optional<bool> return_related_questions{};
    /// How much a reasoning model reasons.
    std::optional<ReasoningEffort> reasoning_effort{};
    /// A JSON schema response format, sent as given.
    std::optional<boost::json::value> response_format{};
    /// e.g. `{"search_context_size": "high", "user_location": {...}}`, sent as given.
    std::optional<boost::json::value> web_search_options{};
    /// Answer from the model alone, without searching.
    std::optional<bool> disable_search{};

    /// Members added to the request object last, after the typed ones (and replacing any of the same
    /// name).
    boost::json::object extra_params{};

    /// Member-wise equality.
    friend bool operator==(const ChatRequest&, const ChatRequest&) = default;
};

/// One search result a completion drew on.
struct SearchResult {
    /// The page's title.
    std::string title{};
    /// The page's address.
    std::string url{};
    /// The publication date, as the API sends it.
    std::optional<std::string> date{};
    /// When the page last changed, as the API sends it.
    std::optional<std::string> last_updated{};
    /// An excerpt of the page.
    std::optional<std::string> snippet{};
    /// "web" or "attachment".
    std::optional<std::string> source{};

    /// Member-wise equality.
    friend bool operator==(const SearchResult&, const SearchResult&) = default;
};

/// What a job cost, in US dollars.
struct Cost {
    /// The prompt's tokens.
    double input_tokens_cost = 0;
    /// The answer's tokens.
    double output_tokens_cost = 0;
    /// Everything together.
    double total_cost = 0;
    /// Citation tokens, for models that bill them.
    std::optional<double> citation_tokens_cost{};
    /// Reasoning tokens, for models that bill them.
    std::optional<double> reasoning_tokens_cost{};
    /// The per-request fee, where there is one.
    std::optional<double> request_cost{};
    /// The searches the job ran.
    std::optional<double> search_queries_cost{};

    /// Member-wise equality.
    friend bool operator==(const Cost&, const Cost&) = default;
};

/// What a job used: tokens, searches, and what they cost.
struct Usage {
    /// Tokens in the prompt.
    std::int64_t prompt_tokens = 0;
    /// Tokens in the answer.
    std::int64_t completion_tokens = 0;
    /// Both together.
    std::int64_t total_tokens = 0;
    /// Tokens of cited sources, for models that report them.
    std::optional<std::int64_t> citation_tokens{};
    /// Searches the job ran.
    std::optional<std::int64_t> num_search_queries{};
    /// Tokens spent reasoning, for reasoning models.
    std::optional<std::int64_t> reasoning_tokens{};
    /// The search context size used, as the API reports it (e.g. "low").
    std::optional<std::string> search_context_size{};
    /// The price of the above, when the API reports it.
    std::optional<Cost> cost{};

    /// Member-wise equality.
    friend bool operator==(const Usage&, const Usage&) = default;
};

/// One answer of a completion (a completion usually has one).
struct Choice {
    /// The choice's position in `ChatCompletion::choices`.
    std::int64_t index = 0;
    /// "stop", "length", or empty when the API sent null.
    std::optional<std::string> finish_reason{};
    /// The answer: an assistant message.
    Message message{};
    /// The streaming form of the answer, when the API includes it (async jobs do not stream).
    std::optional<Message> delta{};

    /// Member-wise equality.
    friend bool operator==(const Choice&, const Choice&) = default;
};

/// The answer of a COMPLETED job.
struct ChatCompletion {
    /// The completion's own id (not the job's).
    std::string id{};
    /// The model that answered.
    std::string model{};
    /// When it was made, in Unix seconds.
    std::int64_t created = 0;
    /// "chat.completion", when sent.
    std::optional<std::string> object{};
    /// The answers; `text()` reads the first.
    std::vector<Choice> choices{};
    /// The addresses of the sources the answer cites.
    std::vector<std::string> citations{};
    /// The search results the answer drew on.
    std::vector<SearchResult> search_results{};
    /// Kept as JSON: its shape is not part of the contract.
    std::optional<boost::json::value> images{};
    /// Follow-up questions, when `ChatRequest::return_related_questions` asked for them.
    std::vector<std::string> related_questions{};
    /// Tokens and cost, when reported.
    std::optional<Usage> usage{};
    /// The completion exactly as received, so fields this library does not model stay reachable.
    boost::json::object raw{};

    /// The first choice's message text, or empty when there is no choice.
    std::string text() const { return choices.empty() ? std::string{} : choices.front().message.text(); }

    /// Member-wise equality (`raw` included).
    friend bool operator==(const ChatCompletion&, const ChatCompletion&) = default;
};

}  // namespace perplexity
