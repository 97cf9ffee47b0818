// The Agent API's types and JSON: a field table for each response type (read by its decoder and its
// encoder, as in json_mapping.hpp), and the writer of a create's body.
//
// Responses are read tolerantly like jobs: unknown members are ignored, an unknown status is kept as
// text, and an output item of an unknown type is kept whole as OtherOutput. A request is written
// strictly: the API refuses any member it does not know, so only what the caller set is sent.
#pragma once

#include <perplexity/detail/json_encoders.hpp>
#include <perplexity/detail/json_fields.hpp>
#include <perplexity/detail/json_mapping.hpp>
#include <perplexity/detail/json_reader.hpp>
#include <perplexity/response.hpp>
#include <perplexity/response_request.hpp>

#include <boost/json/serialize.hpp>
#include <boost/json/value_from.hpp>

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace perplexity {

namespace detail {

/// An error `code` may be a number or a string; either is kept as text.
struct ErrorCodeCodec {
    static void decode(json::value& value, const JsonPath& at, std::string& out) {
        if (value.is_string()) {
            out = value.get_string();
        } else if (value.is_int64() || value.is_uint64()) {
            out = json::serialize(value);
        } else {
            fail_type(value, at, "a string or an integer");
        }
    }

    static json::value encode(const std::string& code, const json::storage_ptr& storage) {
        return json::value(code, storage);
    }
};

/// JSON kept as it was sent (incomplete_details, the usage details): an object, holding no number too
/// large for a double. Boost.JSON reads 1e999 as infinity and writes it back as `Infinity`, which is
/// not JSON, so a response keeping one could not be written and read again.
struct KeptObjectCodec {
    static void decode(json::value& value, const JsonPath& at, json::object& out) {
        decode_into(value, at, out);
        require_finite_numbers(value, at);
    }

    static json::value encode(const json::object& object, const json::storage_ptr& storage) {
        return json::value(object, storage);
    }
};

/// "status" of a response: the text as sent and its parsed form, like a job's.
struct ResponseStatusField {
    std::string_view name = "status";
    Presence presence = Presence::required;
    WhenAbsent when_absent = WhenAbsent::left_out;

    static void decode(Response& response, json::value& value, const JsonPath& at) {
        JsonDecoder<std::string>::decode_into(value, at, response.status_text);
        response.status = response_status_from_string(response.status_text);
    }

    static bool absent_in(const Response&) noexcept { return false; }

    static json::value encode(const Response& response, const json::storage_ptr& storage) {
        if (response.status_text.empty()) {
            return json::value(to_string(response.status), storage);
        }
        return json::value(response.status_text, storage);
    }
};

template <>
struct JsonFields<ResponseError> {
    static constexpr FieldTable fields{
        required_field("message", &ResponseError::message),
        optional_field<ErrorCodeCodec>("code", &ResponseError::code),
        optional_field("type", &ResponseError::type),
    };
};

template <>
struct JsonFields<Annotation> {
    static constexpr FieldTable fields{
        optional_field("type", &Annotation::type),
        optional_field("url", &Annotation::url),
        optional_field("title", &Annotation::title),
        optional_field("start_index", &Annotation::start_index),
        optional_field("end_index", &Annotation::end_index),
    };
};

template <>
struct JsonFields<OutputContent> {
    static constexpr FieldTable fields{
        required_field("type", &OutputContent::type),
        optional_field("text", &OutputContent::text),
        optional_field("annotations", &OutputContent::annotations),
    };
};

template <>
struct JsonFields<OutputMessage> {
    static constexpr FieldTable fields{
        optional_field("id", &OutputMessage::id),
        optional_field("role", &OutputMessage::role),
        optional_field("status", &OutputMessage::status),
        optional_field("content", &OutputMessage::content),
    };
};

template <>
struct JsonFields<SearchResultsOutput> {
    static constexpr FieldTable fields{
        optional_field("results", &SearchResultsOutput::results),
        optional_field("queries", &SearchResultsOutput::queries),
    };
};

template <>
struct JsonFields<FetchedPage> {
    static constexpr FieldTable fields{
        required_field("url", &FetchedPage::url),
        optional_field("title", &FetchedPage::title),
        optional_field("snippet", &FetchedPage::snippet),
    };
};

template <>
struct JsonFields<FetchUrlResultsOutput> {
    static constexpr FieldTable fields{
        optional_field("contents", &FetchUrlResultsOutput::contents),
    };
};

template <>
struct JsonFields<FunctionCall> {
    static constexpr FieldTable fields{
        optional_field("id", &FunctionCall::id),
        required_field("call_id", &FunctionCall::call_id),
        required_field("name", &FunctionCall::name),
        required_field("arguments", &FunctionCall::arguments),
        optional_field("status", &FunctionCall::status),
        optional_field("thought_signature", &FunctionCall::thought_signature),
    };
};

template <>
struct JsonFields<ResponseCost> {
    static constexpr FieldTable fields{
        optional_field("currency", &ResponseCost::currency),
        required_field("input_cost", &ResponseCost::input_cost),
        required_field("output_cost", &ResponseCost::output_cost),
        required_field("total_cost", &ResponseCost::total_cost),
        optional_field("cache_creation_cost", &ResponseCost::cache_creation_cost),
        optional_field("cache_read_cost", &ResponseCost::cache_read_cost),
        optional_field("tool_calls_cost", &ResponseCost::tool_calls_cost),
    };
};

template <>
struct JsonFields<ResponseUsage> {
    static constexpr FieldTable fields{
        required_field("input_tokens", &ResponseUsage::input_tokens),
        required_field("output_tokens", &ResponseUsage::output_tokens),
        required_field("total_tokens", &ResponseUsage::total_tokens),
        optional_field("cost", &ResponseUsage::cost),
        optional_field<KeptObjectCodec>("input_tokens_details", &ResponseUsage::input_tokens_details),
        optional_field<KeptObjectCodec>("tool_calls_details", &ResponseUsage::tool_calls_details),
    };
};

template <>
struct JsonFields<Response> {
    static constexpr FieldTable fields{
        required_field("id", &Response::id),
        ResponseStatusField{},
        required_field("object", &Response::object),
        required_field("created_at", &Response::created_at),
        required_field("model", &Response::model),
        required_field("output", &Response::output),
        optional_field("error", &Response::error),
        optional_field<KeptObjectCodec>("incomplete_details", &Response::incomplete_details),
        optional_field("background", &Response::background),
        optional_field("previous_response_id", &Response::previous_response_id),
        optional_field("store", &Response::store),
        optional_field("usage", &Response::usage),
    };
};

template <>
struct JsonFields<CancelAcknowledgement> {
    static constexpr FieldTable fields{
        required_field("response_id", &CancelAcknowledgement::response_id),
        required_field("status", &CancelAcknowledgement::status),
    };
};

template <>
struct JsonDecoder<ResponseError> : TableDecoder<ResponseError> {};
template <>
struct JsonDecoder<Annotation> : TableDecoder<Annotation> {};
template <>
struct JsonDecoder<OutputContent> : TableDecoder<OutputContent> {};
template <>
struct JsonDecoder<FetchedPage> : TableDecoder<FetchedPage> {};
template <>
struct JsonDecoder<ResponseCost> : TableDecoder<ResponseCost> {};
template <>
struct JsonDecoder<ResponseUsage> : TableDecoder<ResponseUsage> {};
template <>
struct JsonDecoder<Response> : TableDecoder<Response> {};
template <>
struct JsonDecoder<CancelAcknowledgement> : TableDecoder<CancelAcknowledgement> {};

/// An output item: its `type` picks the alternative; an unknown type is kept whole, so no item of a
/// kind newer than this release is lost to decoding. A known type is read by its table like any other
/// value: a required member missing or a member of the wrong type is a decode error at its path. A
/// missing or non-string `type` is a decode error too: the item is not an item.
template <>
struct JsonDecoder<OutputItem> {
    static void decode_into(json::value& value, const JsonPath& at, OutputItem& out) {
        json::object& object = expect_object(value, at);
        const json::value* type = object.if_contains("type");
        if (type == nullptr || !type->is_string()) {
            fail_decode(JsonPath(at, "type"), "an output item needs a string \"type\"");
        }
        const std::string_view name = type->get_string();
        if (name == "message") {
            decode_fields(object, at, out.emplace<OutputMessage>());
        } else if (name == "search_results") {
            decode_fields(object, at, out.emplace<SearchResultsOutput>());
        } else if (name == "fetch_url_results") {
            decode_fields(object, at, out.emplace<FetchUrlResultsOutput>());
        } else if (name == "function_call") {
            decode_fields(object, at, out.emplace<FunctionCall>());
        } else {
            // Kept whole, so held to what kept JSON must be (see KeptObjectCodec).
            require_finite_numbers(value, at);
            out.emplace<OtherOutput>(
                OtherOutput{std::string(name), json::object(object, json::storage_ptr())});
        }
    }

    static OutputItem decode(json::value& value, const JsonPath& at) {
        OutputItem item;
        decode_into(value, at, item);
        return item;
    }
};

/// Writes `value` under `key` when it is set.
template <class T>
void put_if_set(json::object& body, std::string_view key, const std::optional<T>& value) {
    if (value) {
        body[key] = json::value_from(*value, body.storage());
    }
}

inline json::value input_part_json(const InputPart& part) {
    json::object object{{"type", part.type}};
    put_if_set(object, "text", part.text);
    put_if_set(object, "image_url", part.image_url);
    return object;
}

inline json::value input_item_json(const InputItem& item) {
    if (const auto* message = std::get_if<InputMessage>(&item)) {
        json::object object{{"type", "message"}, {"role", message->role}};
        if (const auto* text = std::get_if<std::string>(&message->content)) {
            object["content"] = *text;
        } else {
            json::array parts;
            for (const InputPart& part : std::get<std::vector<InputPart>>(message->content)) {
                parts.push_back(input_part_json(part));
            }
            object["content"] = std::move(parts);
        }
        return object;
    }
    if (const auto* output = std::get_if<FunctionCallOutput>(&item)) {
        json::object object{
            {"type", "function_call_output"}, {"call_id", output->call_id}, {"output", output->output}};
        put_if_set(object, "name", output->name);
        return object;
    }
    return std::get<json::object>(item);
}

inline json::value tool_json(const Tool& tool) {
    if (const auto* search = std::get_if<WebSearchTool>(&tool)) {
        json::object object{{"type", "web_search"}};
        if (search->filters) {
            const SearchFilters& filters = *search->filters;
            json::object written;
            if (!filters.search_domain_filter.empty()) {
                written["search_domain_filter"] = json::value_from(filters.search_domain_filter);
            }
            put_if_set(written, "search_recency_filter", filters.search_recency_filter);
            put_if_set(written, "search_after_date_filter", filters.search_after_date_filter);
            put_if_set(written, "search_before_date_filter", filters.search_before_date_filter);
            put_if_set(written, "last_updated_after_filter", filters.last_updated_after_filter);
            put_if_set(written, "last_updated_before_filter", filters.last_updated_before_filter);
            object["filters"] = std::move(written);
        }
        put_if_set(object, "search_context_size", search->search_context_size);
        put_if_set(object, "user_location", search->user_location);
        put_if_set(object, "max_tokens", search->max_tokens);
        put_if_set(object, "max_tokens_per_page", search->max_tokens_per_page);
        return object;
    }
    if (const auto* fetch = std::get_if<FetchUrlTool>(&tool)) {
        json::object object{{"type", "fetch_url"}};
        put_if_set(object, "max_urls", fetch->max_urls);
        return object;
    }
    if (const auto* function = std::get_if<FunctionTool>(&tool)) {
        json::object object{{"type", "function"}, {"name", function->name}};
        put_if_set(object, "description", function->description);
        put_if_set(object, "parameters", function->parameters);
        put_if_set(object, "strict", function->strict);
        return object;
    }
    return std::get<json::object>(tool);
}

}  // namespace detail

}  // namespace perplexity
