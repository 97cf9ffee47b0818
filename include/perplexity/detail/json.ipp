// The definitions behind <perplexity/json.hpp>: the encoders of json_encoders.hpp and the parse and
// create-body functions. Inline, included by json.hpp, header-only; compiled once by <perplexity/src.hpp>
// with separate compilation.
#pragma once

#include <perplexity/detail/config.hpp>
#include <perplexity/detail/json_mapping.hpp>
#include <perplexity/detail/json_parse.hpp>
#include <perplexity/detail/response_mapping.hpp>
#include <perplexity/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace perplexity {

// The Sonar async API's types.

PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const ContentPart& part) {
    detail::encode_fields(out.emplace_object(), part);
}

PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const Message& message) {
    detail::encode_fields(out.emplace_object(), message);
}

PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const SearchResult& result) {
    detail::encode_fields(out.emplace_object(), result);
}

PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const Cost& cost) {
    detail::encode_fields(out.emplace_object(), cost);
}

PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const Usage& usage) {
    detail::encode_fields(out.emplace_object(), usage);
}

PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const Choice& choice) {
    detail::encode_fields(out.emplace_object(), choice);
}

/// Starts from the raw completion, so members this library does not model survive a round trip, then
/// writes every typed member over it: the typed members are the truth, an empty one included (it is left
/// out even when the raw object has it).
PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const ChatCompletion& completion) {
    boost::json::object& object = out.emplace_object();
    object = completion.raw;
    detail::encode_fields(object, completion);
}

PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const JobSummary& summary) {
    detail::encode_fields(out.emplace_object(), summary);
}

PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out, const Job& job) {
    detail::encode_fields(out.emplace_object(), job);
}

PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const JobPage& page) {
    detail::encode_fields(out.emplace_object(), page);
}

/// The chat parameters object (the `request` member of a create body).
PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const ChatRequest& request) {
    boost::json::object& object = out.emplace_object();
    detail::encode_fields(object, request);
    for (const auto& [key, value] : request.extra_params) {
        object[key] = value;
    }
}

// The Agent API's types.

PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const ResponseError& error) {
    detail::encode_fields(out.emplace_object(), error);
}

PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const Annotation& annotation) {
    detail::encode_fields(out.emplace_object(), annotation);
}

PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const OutputContent& content) {
    detail::encode_fields(out.emplace_object(), content);
}

/// Written with its `type` first, as the API writes items; an OtherOutput as it came.
PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const OutputItem& item) {
    if (const auto* other = std::get_if<OtherOutput>(&item)) {
        out = other->raw;
        return;
    }
    boost::json::object& object = out.emplace_object();
    object["type"] = output_type(item);
    std::visit(
        [&](const auto& alternative) {
            using Alternative = std::decay_t<decltype(alternative)>;
            if constexpr (!std::is_same_v<Alternative, OtherOutput>) {
                detail::encode_fields(object, alternative);
            }
        },
        item);
}

PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const FetchedPage& page) {
    detail::encode_fields(out.emplace_object(), page);
}

PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const ResponseCost& cost) {
    detail::encode_fields(out.emplace_object(), cost);
}

PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const ResponseUsage& usage) {
    detail::encode_fields(out.emplace_object(), usage);
}

PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const Response& response) {
    detail::encode_fields(out.emplace_object(), response);
}

PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const CancelAcknowledgement& acknowledgement) {
    detail::encode_fields(out.emplace_object(), acknowledgement);
}

/// The create body without `background`: exactly the members the caller set, then `extra_fields` over
/// them.
PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const ResponseRequest& request) {
    using detail::put_if_set;
    boost::json::object& body = out.emplace_object();
    if (const auto* text = std::get_if<std::string>(&request.input)) {
        body["input"] = *text;
    } else {
        boost::json::array items;
        for (const InputItem& item : std::get<std::vector<InputItem>>(request.input)) {
            items.push_back(detail::input_item_json(item));
        }
        body["input"] = std::move(items);
    }
    put_if_set(body, "model", request.model);
    if (!request.models.empty()) {
        body["models"] = boost::json::value_from(request.models);
    }
    put_if_set(body, "preset", request.preset);
    put_if_set(body, "instructions", request.instructions);
    put_if_set(body, "max_output_tokens", request.max_output_tokens);
    put_if_set(body, "max_steps", request.max_steps);
    if (request.reasoning_effort) {
        body["reasoning"] = boost::json::object{{"effort", *request.reasoning_effort}};
    }
    put_if_set(body, "response_format", request.response_format);
    if (!request.tools.empty()) {
        boost::json::array tools;
        for (const Tool& tool : request.tools) {
            tools.push_back(detail::tool_json(tool));
        }
        body["tools"] = std::move(tools);
    }
    put_if_set(body, "language_preference", request.language_preference);
    put_if_set(body, "previous_response_id", request.previous_response_id);
    put_if_set(body, "store", request.store);
    put_if_set(body, "temperature", request.temperature);
    put_if_set(body, "top_p", request.top_p);
    for (const auto& [key, value] : request.extra_fields) {
        body[key] = value;
    }
}

// Bodies.

PERPLEXITY_ASYNC_DECL expected<Job, Error> parse_job(std::string_view body) {
    return detail::parse_body<Job>(body, "job");
}

PERPLEXITY_ASYNC_DECL expected<JobPage, Error> parse_job_page(std::string_view body) {
    return detail::parse_body<JobPage>(body, "job list");
}

PERPLEXITY_ASYNC_DECL expected<ChatCompletion, Error> parse_chat_completion(std::string_view body) {
    return detail::parse_body<ChatCompletion>(body, "chat completion");
}

PERPLEXITY_ASYNC_DECL boost::json::object create_request_body(
    const ChatRequest& request, const std::optional<std::string>& idempotency_key) {
    boost::json::object body;
    body["request"] = boost::json::value_from(request);
    if (idempotency_key) {
        body["idempotency_key"] = *idempotency_key;
    }
    return body;
}

PERPLEXITY_ASYNC_DECL expected<Response, Error> parse_response(std::string_view body) {
    return detail::parse_body<Response>(body, "response");
}

PERPLEXITY_ASYNC_DECL expected<CancelAcknowledgement, Error> parse_cancel_acknowledgement(
    std::string_view body) {
    return detail::parse_body<CancelAcknowledgement>(body, "cancel acknowledgement");
}

PERPLEXITY_ASYNC_DECL boost::json::object create_response_body(const ResponseRequest& request) {
    boost::json::value body = boost::json::value_from(request);
    boost::json::object& object = body.as_object();
    object["background"] = true;
    return std::move(object);
}

}  // namespace perplexity
