/// @file
/// ResponseRequest: what `Client::create_response` and `Client::run_response` send to the Agent API.
///
/// The API refuses any field it does not know with a 400, so only what is set here is sent: every
/// optional member left empty stays out of the body. `extra_fields` is merged in last, for fields the
/// API adds after this release.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace perplexity {

/// One part of an input message's content: `input_text` (with `text`) or `input_image` (with `image_url`).
struct InputPart {
    /// "input_text" or "input_image".
    std::string type = "input_text";
    /// The text of an `input_text` part.
    std::optional<std::string> text{};
    /// The image of an `input_image` part: a URL or a data URI.
    std::optional<std::string> image_url{};

    /// Member-wise equality.
    friend bool operator==(const InputPart&, const InputPart&) = default;
};

/// An input message; `role` is "user", "assistant", "system" or "developer".
struct InputMessage {
    /// Who says it.
    std::string role = "user";
    /// Text, or parts.
    std::variant<std::string, std::vector<InputPart>> content{};

    /// Member-wise equality.
    friend bool operator==(const InputMessage&, const InputMessage&) = default;
};

/// The output of one of your function tools, answering the FunctionCall with the same `call_id` of the
/// response named by ResponseRequest::previous_response_id.
struct FunctionCallOutput {
    /// The FunctionCall::call_id this answers.
    std::string call_id{};
    /// What the function returned, as text (often JSON).
    std::string output{};
    /// The function's name, when you want to repeat it.
    std::optional<std::string> name{};

    /// Member-wise equality.
    friend bool operator==(const FunctionCallOutput&, const FunctionCallOutput&) = default;
};

/// One input item; any other item (e.g. a `function_call` echoed back) is sent as the given JSON object.
using InputItem = std::variant<InputMessage, FunctionCallOutput, boost::json::object>;

/// The `input` of a request: a text, or input items.
using ResponseInput = std::variant<std::string, std::vector<InputItem>>;

/// The filters of a web_search tool.
struct SearchFilters {
    /// Domains to search only (or, prefixed with '-', to leave out).
    std::vector<std::string> search_domain_filter{};
    /// "hour", "day", "week", "month" or "year".
    std::optional<std::string> search_recency_filter{};
    /// Only pages published after this date (as the API takes it, e.g. "3/1/2025").
    std::optional<std::string> search_after_date_filter{};
    /// Only pages published before this date.
    std::optional<std::string> search_before_date_filter{};
    /// Only pages updated after this date.
    std::optional<std::string> last_updated_after_filter{};
    /// Only pages updated before this date.
    std::optional<std::string> last_updated_before_filter{};

    /// Member-wise equality.
    friend bool operator==(const SearchFilters&, const SearchFilters&) = default;
};

/// The `web_search` tool.
struct WebSearchTool {
    /// Which pages the search may use.
    std::optional<SearchFilters> filters{};
    /// "low", "medium" or "high".
    std::optional<std::string> search_context_size{};
    /// As the API takes it (country, city, ...).
    std::optional<boost::json::object> user_location{};
    /// The most tokens of search results given to the model.
    std::optional<std::int64_t> max_tokens{};
    /// The most tokens taken from one page.
    std::optional<std::int64_t> max_tokens_per_page{};

    /// Member-wise equality.
    friend bool operator==(const WebSearchTool&, const WebSearchTool&) = default;
};

/// The `fetch_url` tool.
struct FetchUrlTool {
    /// The most pages one call may read.
    std::optional<std::int64_t> max_urls{};

    /// Member-wise equality.
    friend bool operator==(const FetchUrlTool&, const FetchUrlTool&) = default;
};

/// A function of yours the model may call; the response then ends `requires_action`. `name` must not be
/// a built-in tool's (web_search, fetch_url, ...).
struct FunctionTool {
    /// The function's name, as the model will call it.
    std::string name{};
    /// What the function does, for the model.
    std::optional<std::string> description{};
    /// A JSON schema of the arguments.
    std::optional<boost::json::value> parameters{};
    /// Whether the arguments must follow `parameters` exactly.
    std::optional<bool> strict{};

    /// Member-wise equality.
    friend bool operator==(const FunctionTool&, const FunctionTool&) = default;
};

/// A tool the model may use; any other tool (people_search, finance_search, sandbox, mcp, ...) is sent
/// as the given JSON object, `type` included.
using Tool = std::variant<WebSearchTool, FetchUrlTool, FunctionTool, boost::json::object>;

/// A create of the Agent API. Exactly one of `model`, `models` and `preset` should be set; the preset
/// "medium" is the API's deep-research equivalent of `sonar-deep-research`. `background` is not a member:
/// the Client always sends `"background": true`.
struct ResponseRequest {
    /// Required: a text or input items.
    ResponseInput input{};
    /// A provider-prefixed model, e.g. "perplexity/sonar" or "openai/gpt-5.1".
    std::optional<std::string> model{};
    /// Models to fall back through, in order; at most 5.
    std::vector<std::string> models{};
    /// "fast", "low", "medium", "high" or "xhigh".
    std::optional<std::string> preset{};
    /// A system-level instruction for the run.
    std::optional<std::string> instructions{};
    /// The most tokens the answer may use; greater than 0.
    std::optional<std::int64_t> max_output_tokens{};
    /// 1 to 100.
    std::optional<std::int64_t> max_steps{};
    /// Sent as `reasoning: {"effort": ...}`: "minimal", "low", "medium", "high" or "xhigh".
    std::optional<std::string> reasoning_effort{};
    /// As the API takes it, e.g. `{"type": "json_schema", "json_schema": {...}}`.
    std::optional<boost::json::object> response_format{};
    /// The tools the model may use; none when empty (a preset brings its own).
    std::vector<Tool> tools{};
    /// The answer's language, e.g. "en".
    std::optional<std::string> language_preference{};
    /// Continues that response, e.g. with FunctionCallOutput items after `requires_action`.
    std::optional<std::string> previous_response_id{};
    /// false hides the response from retrieve, which a background wait needs: leave it unset or true.
    std::optional<bool> store{};
    /// Sampling temperature.
    std::optional<double> temperature{};
    /// Nucleus sampling threshold.
    std::optional<double> top_p{};
    /// Merged into the body last, over the typed members, for fields newer than this release.
    boost::json::object extra_fields{};

    /// Member-wise equality.
    friend bool operator==(const ResponseRequest&, const ResponseRequest&) = default;
};

}  // namespace perplexity
