/// @file
/// Responses of the Agent API (`/v1/responses`): what `Client::create_response`, `get_response`,
/// `wait_response` and `run_response` return.
///
/// A background response is the Agent API's async job: created queued, polled until it ends. Its
/// outcome is a list of typed output items (the answer's message, the search results behind it, the
/// function calls the model wants made, ...); items of kinds this release does not model are kept as
/// their raw JSON. All of these are plain values that own their members.
#pragma once

#include <perplexity/chat.hpp>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace perplexity {

/// Where a response is in its life. `queued` and `in_progress` are running; the others are final:
/// `completed` (the answer is there), `failed` (see Response::error), `cancelled` (stopped on the
/// server), `requires_action` (the model called a function tool of yours and waits for its output: the
/// caller's turn), `incomplete` (ended early, e.g. at max_output_tokens; see
/// Response::incomplete_details). `unknown` stands for a status this release does not know; the text as
/// sent is kept in Response::status_text, and a wait keeps polling it.
enum class ResponseStatus {
    queued,
    in_progress,
    completed,
    failed,
    cancelled,
    requires_action,
    incomplete,
    unknown
};

/// The status as the API spells it ("in_progress"); "unknown" for `unknown`.
constexpr std::string_view to_string(ResponseStatus status) noexcept {
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
        case ResponseStatus::requires_action:
            return "requires_action";
        case ResponseStatus::incomplete:
            return "incomplete";
        case ResponseStatus::unknown:
            break;
    }
    return "unknown";
}

/// Parses the API's spelling; anything unrecognised is `unknown`.
constexpr ResponseStatus response_status_from_string(std::string_view text) noexcept {
    for (ResponseStatus status :
         {ResponseStatus::queued, ResponseStatus::in_progress, ResponseStatus::completed,
          ResponseStatus::failed, ResponseStatus::cancelled, ResponseStatus::requires_action,
          ResponseStatus::incomplete}) {
        if (to_string(status) == text) {
            return status;
        }
    }
    return ResponseStatus::unknown;
}

/// True for every status after which the response does not change by itself: completed, failed,
/// cancelled, requires_action and incomplete.
constexpr bool is_final(ResponseStatus status) noexcept {
    return status != ResponseStatus::queued && status != ResponseStatus::in_progress &&
           status != ResponseStatus::unknown;
}

/// Whether `seen` comes before `known` in a response's life (queued, then in_progress, then a final
/// status): a poll answering so is a stale read. An unknown status is never taken for one.
constexpr bool is_earlier(ResponseStatus seen, ResponseStatus known) noexcept {
    constexpr auto stage = [](ResponseStatus status) {
        switch (status) {
            case ResponseStatus::queued:
                return 0;
            case ResponseStatus::in_progress:
                return 1;
            case ResponseStatus::unknown:
                return -1;
            default:
                return 2;
        }
    };
    return stage(seen) >= 0 && stage(known) >= 0 && stage(seen) < stage(known);
}

/// The `error` object of a failed or cancelled response.
struct ResponseError {
    /// What went wrong, in the API's words.
    std::string message{};
    /// The API's error code, when it sent one (a number is kept as its digits).
    std::optional<std::string> code{};
    /// The API's error type, when it sent one.
    std::optional<std::string> type{};

    /// Member-wise equality.
    friend bool operator==(const ResponseError&, const ResponseError&) = default;
};

/// A citation inside an output text. Every member is optional: the API often sends them empty.
struct Annotation {
    /// The annotation's kind, e.g. "url_citation".
    std::optional<std::string> type{};
    /// The cited page.
    std::optional<std::string> url{};
    /// The cited page's title.
    std::optional<std::string> title{};
    /// Where the cited span starts in the text.
    std::optional<std::int64_t> start_index{};
    /// Where the cited span ends in the text.
    std::optional<std::int64_t> end_index{};

    /// Member-wise equality.
    friend bool operator==(const Annotation&, const Annotation&) = default;
};

/// One part of an output message's content. Only `output_text` parts carry text; a part of another
/// type keeps its `type` and an empty `text`.
struct OutputContent {
    /// "output_text", or another part type as the API names it.
    std::string type = "output_text";
    /// The text of an `output_text` part.
    std::string text{};
    /// The citations inside `text`, when sent.
    std::vector<Annotation> annotations{};

    /// Member-wise equality.
    friend bool operator==(const OutputContent&, const OutputContent&) = default;
};

/// A `message` output item: the model's answer, or a part of it.
struct OutputMessage {
    /// The item's id.
    std::string id{};
    /// "assistant".
    std::string role = "assistant";
    /// The item's own status, when sent ("completed", ...).
    std::optional<std::string> status{};
    /// The message's parts, in order.
    std::vector<OutputContent> content{};

    /// The `output_text` parts' text, joined.
    std::string text() const {
        std::string joined;
        for (const OutputContent& part : content) {
            if (part.type == "output_text") {
                joined += part.text;
            }
        }
        return joined;
    }

    /// Member-wise equality.
    friend bool operator==(const OutputMessage&, const OutputMessage&) = default;
};

/// A `search_results` output item: the sources a web search found; where citations live in this API.
struct SearchResultsOutput {
    /// The pages found.
    std::vector<SearchResult> results{};
    /// The queries the model searched for, when sent.
    std::vector<std::string> queries{};

    /// Member-wise equality.
    friend bool operator==(const SearchResultsOutput&, const SearchResultsOutput&) = default;
};

/// One page a `fetch_url` tool read.
struct FetchedPage {
    /// The page's address.
    std::string url{};
    /// The page's title, when sent.
    std::optional<std::string> title{};
    /// An excerpt of the page, when sent.
    std::optional<std::string> snippet{};

    /// Member-wise equality.
    friend bool operator==(const FetchedPage&, const FetchedPage&) = default;
};

/// A `fetch_url_results` output item.
struct FetchUrlResultsOutput {
    /// The pages read.
    std::vector<FetchedPage> contents{};

    /// Member-wise equality.
    friend bool operator==(const FetchUrlResultsOutput&, const FetchUrlResultsOutput&) = default;
};

/// A `function_call` output item: the model calls one of the caller's function tools. Answer it with a
/// new create whose `previous_response_id` is this response's id and whose input holds a
/// FunctionCallOutput with the same `call_id`.
struct FunctionCall {
    /// The item's id, when sent.
    std::optional<std::string> id{};
    /// What the FunctionCallOutput answering this call names.
    std::string call_id{};
    /// The function called: one of the request's FunctionTool names.
    std::string name{};
    /// The arguments as a JSON text, as the model wrote them (parse with boost::json::parse).
    std::string arguments{};
    /// The item's own status, when sent.
    std::optional<std::string> status{};
    /// An opaque value some models send; pass it back unchanged if you echo the call.
    std::optional<std::string> thought_signature{};

    /// Member-wise equality.
    friend bool operator==(const FunctionCall&, const FunctionCall&) = default;
};

/// An output item of a kind this release does not model (`mcp_call`, `skill_loaded`, ...), kept whole.
struct OtherOutput {
    /// The item's `type`.
    std::string type{};
    /// The whole item, `type` included.
    boost::json::object raw{};

    /// Member-wise equality.
    friend bool operator==(const OtherOutput&, const OtherOutput&) = default;
};

/// One item of a response's `output`, told apart by its JSON `type`.
using OutputItem =
    std::variant<OutputMessage, SearchResultsOutput, FetchUrlResultsOutput, FunctionCall, OtherOutput>;

/// The `type` an output item has on the wire.
inline std::string_view output_type(const OutputItem& item) noexcept {
    struct Visitor {
        std::string_view operator()(const OutputMessage&) const noexcept { return "message"; }
        std::string_view operator()(const SearchResultsOutput&) const noexcept { return "search_results"; }
        std::string_view operator()(const FetchUrlResultsOutput&) const noexcept {
            return "fetch_url_results";
        }
        std::string_view operator()(const FunctionCall&) const noexcept { return "function_call"; }
        std::string_view operator()(const OtherOutput& other) const noexcept { return other.type; }
    };
    return std::visit(Visitor{}, item);
}

/// What a response cost, in `currency`.
struct ResponseCost {
    /// "USD".
    std::string currency = "USD";
    /// The cost of the input tokens.
    double input_cost = 0;
    /// The cost of the output tokens.
    double output_cost = 0;
    /// Everything the response cost.
    double total_cost = 0;
    /// The cost of writing the prompt cache, when sent.
    std::optional<double> cache_creation_cost{};
    /// The cost of reading the prompt cache, when sent.
    std::optional<double> cache_read_cost{};
    /// The cost of the tools used (searches, fetches), when sent.
    std::optional<double> tool_calls_cost{};

    /// Member-wise equality.
    friend bool operator==(const ResponseCost&, const ResponseCost&) = default;
};

/// Token counts and cost of a response.
struct ResponseUsage {
    /// Tokens read.
    std::int64_t input_tokens = 0;
    /// Tokens written.
    std::int64_t output_tokens = 0;
    /// Both together.
    std::int64_t total_tokens = 0;
    /// What it cost, when sent.
    std::optional<ResponseCost> cost{};
    /// As sent (its shape is not fixed by the contract).
    std::optional<boost::json::object> input_tokens_details{};
    /// Per tool, e.g. `{"web_search": {"invocation": 2}}`, as sent.
    std::optional<boost::json::object> tool_calls_details{};

    /// Member-wise equality.
    friend bool operator==(const ResponseUsage&, const ResponseUsage&) = default;
};

/// A response of the Agent API, as create and retrieve return it.
struct Response {
    /// The id the API gave it ("resp_..."); what `get_response`, `cancel_response` and `wait_response` take.
    std::string id{};
    /// The status, parsed; `unknown` for one this release does not know (see `status_text`).
    ResponseStatus status = ResponseStatus::unknown;
    /// The status exactly as sent.
    std::string status_text{};
    /// When it was created, in Unix seconds.
    std::int64_t created_at = 0;
    /// The model that actually served it (a preset may resolve to another provider's model).
    std::string model{};
    /// "response".
    std::string object = "response";
    /// What the model produced, in order.
    std::vector<OutputItem> output{};
    /// Why it failed or was cancelled, when it did.
    std::optional<ResponseError> error{};
    /// Why an `incomplete` response stopped, e.g. `{"reason": "max_output_tokens"}`, as sent.
    std::optional<boost::json::object> incomplete_details{};
    /// Whether it was created in the background (always true from this library).
    std::optional<bool> background{};
    /// The response this one continues, when it does.
    std::optional<std::string> previous_response_id{};
    /// Whether the API keeps it for retrieve, when sent.
    std::optional<bool> store{};
    /// Tokens and cost, once the run has produced output.
    std::optional<ResponseUsage> usage{};

    /// True when the status is final (see `is_final(ResponseStatus)`).
    bool is_final() const noexcept { return perplexity::is_final(status); }

    /// The answer: the `output_text` parts of every `message` item, joined in order. Empty when there is
    /// none (a running, failed or `requires_action` response).
    std::string output_text() const {
        std::string joined;
        for (const OutputItem& item : output) {
            if (const auto* message = std::get_if<OutputMessage>(&item)) {
                joined += message->text();
            }
        }
        return joined;
    }

    /// The function calls the model made; for `requires_action`, the calls waiting for their output.
    std::vector<const FunctionCall*> function_calls() const {
        std::vector<const FunctionCall*> calls;
        for (const OutputItem& item : output) {
            if (const auto* call = std::get_if<FunctionCall>(&item)) {
                calls.push_back(call);
            }
        }
        return calls;
    }

    /// Every search result of every `search_results` item, in order: the answer's sources.
    std::vector<const SearchResult*> search_results() const {
        std::vector<const SearchResult*> found;
        for (const OutputItem& item : output) {
            if (const auto* results = std::get_if<SearchResultsOutput>(&item)) {
                for (const SearchResult& result : results->results) {
                    found.push_back(&result);
                }
            }
        }
        return found;
    }

    /// Member-wise equality.
    friend bool operator==(const Response&, const Response&) = default;
};

/// The acknowledgement of a cancel: the run stops shortly after, and a later retrieve shows `cancelled`.
struct CancelAcknowledgement {
    /// The response being cancelled.
    std::string response_id{};
    /// "cancelling".
    std::string status{};

    /// Member-wise equality.
    friend bool operator==(const CancelAcknowledgement&, const CancelAcknowledgement&) = default;
};

}  // namespace perplexity
