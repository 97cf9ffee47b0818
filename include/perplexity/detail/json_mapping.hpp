// The one place where model types meet JSON: a field table for each (see json_fields.hpp), read by both
// its decoder and its encoder.
//
// Decoders are tolerant of what the API adds (unknown members are ignored, null equals absent for
// optional members, unknown statuses decode as JobStatus::unknown) and strict about what the contract
// requires (a missing or mistyped required member fails with its path).
// Encoders write every required member, and an optional one only when it holds something: an empty
// optional member is left out, unless its table entry says WhenAbsent::null and why.
// Encoders are Boost.JSON `tag_invoke` overloads, so `boost::json::value_from(job)` works for users;
// json_encoders.hpp declares them and json.ipp defines them.
#pragma once

#include <perplexity/chat.hpp>
#include <perplexity/detail/json_encoders.hpp>
#include <perplexity/detail/json_fields.hpp>
#include <perplexity/detail/json_reader.hpp>
#include <perplexity/job.hpp>

#include <boost/json/value_from.hpp>

#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace perplexity {

namespace detail {

// Codecs for the members whose JSON has a shape of its own. Each is named in the table entry it serves.

/// `image_url` is `{"url": "..."}` in the API's schema; a bare string is accepted too. Written in the
/// schema's shape.
struct ImageUrlCodec {
    static void decode(json::value& value, const JsonPath& at, std::string& out) {
        if (value.is_string()) {
            JsonDecoder<std::string>::decode_into(value, at, out);
        } else {
            out = required_member<std::string>(expect_object(value, at), "url", at);
        }
    }

    static json::value encode(const std::string& url, const json::storage_ptr& storage) {
        return json::object({{"url", url}}, storage);
    }
};

/// A message's content is text or a list of parts; null is the variant's empty state, handled by the
/// table entry like any absent member.
struct MessageContentCodec {
    static void decode(json::value& value, const JsonPath& at, MessageContent& out) {
        if (value.is_string()) {
            out.emplace<std::string>(value.get_string());
        } else if (value.is_array()) {
            decode_into(value, at, out.emplace<std::vector<ContentPart>>());
        } else {
            fail_type(value, at, "a string, an array of content parts or null");
        }
    }

    static json::value encode(const MessageContent& content, const json::storage_ptr& storage) {
        if (const auto* text = std::get_if<std::string>(&content)) {
            return json::value(*text, storage);
        }
        if (const auto* parts = std::get_if<std::vector<ContentPart>>(&content)) {
            return json::value_from(*parts, storage);
        }
        return json::value(nullptr, storage);
    }
};

/// The API has sent an empty `next_token` on a last page: it reads as no token. Handed the optional
/// itself, so that it can leave it empty.
struct PageTokenCodec {
    static void decode(json::value& value, const JsonPath& at, std::optional<std::string>& out) {
        JsonDecoder<std::string>::decode_into(value, at, out.emplace());
        if (out->empty()) {
            out.reset();
        }
    }

    static json::value encode(const std::string& token, const json::storage_ptr& storage) {
        return json::value(token, storage);
    }
};

/// "status" is two members: the text as sent (so a status added after this release is kept, and written
/// back as it came) and its parsed form. A summary built in code, with no text, writes its parsed form.
struct JobStatusField {
    std::string_view name = "status";
    Presence presence = Presence::required;
    WhenAbsent when_absent = WhenAbsent::left_out;

    static void decode(JobSummary& summary, json::value& value, const JsonPath& at) {
        JsonDecoder<std::string>::decode_into(value, at, summary.status_text);
        summary.status = job_status_from_string(summary.status_text);
    }

    static bool absent_in(const JobSummary&) noexcept { return false; }

    static json::value encode(const JobSummary& summary, const json::storage_ptr& storage) {
        if (summary.status_text.empty()) {
            return json::value(to_string(summary.status), storage);
        }
        return json::value(summary.status_text, storage);
    }
};

// Only a request has enum members, and the library reads requests back only to test their table: an
// unknown spelling is an error, as there is no enum value to keep it in.
template <class Enum>
Enum decode_spelling(json::value& value, const JsonPath& at, std::initializer_list<Enum> known) {
    if (!value.is_string()) {
        fail_type(value, at, "a string");
    }
    for (const Enum candidate : known) {
        if (value.get_string() == to_string(candidate)) {
            return candidate;
        }
    }
    fail_decode(at, "unknown value \"" + std::string(value.get_string()) + "\"");
}

template <>
struct JsonDecoder<SearchMode> {
    static SearchMode decode(json::value& value, const JsonPath& at) {
        return decode_spelling(value, at, {SearchMode::web, SearchMode::academic, SearchMode::sec});
    }
};

template <>
struct JsonDecoder<ReasoningEffort> {
    static ReasoningEffort decode(json::value& value, const JsonPath& at) {
        return decode_spelling(value, at,
                               {ReasoningEffort::low, ReasoningEffort::medium, ReasoningEffort::high});
    }
};

// The tables. Entries are in the order decoding checks them, which is the order the first problem in a
// body is reported in. An entry without WhenAbsent::null is left out when empty even where the API's
// examples show a null (a search result's `date`, a cost's `request_cost`): readers, this library's
// included, take null and absent alike, and one rule is easier to rely on than a list of samples.

template <>
struct JsonFields<ContentPart> {
    static constexpr FieldTable fields{
        required_field("type", &ContentPart::type),
        optional_field("text", &ContentPart::text),
        optional_field<ImageUrlCodec>("image_url", &ContentPart::image_url),
    };
};

template <>
struct JsonFields<Message> {
    static constexpr FieldTable fields{
        required_field("role", &Message::role),
        // Decoding tolerates a missing content, but the API's message schema requires the member, so a
        // message without content says so with null.
        optional_field<MessageContentCodec>("content", &Message::content, WhenAbsent::null),
        optional_field("reasoning_steps", &Message::reasoning_steps),
        optional_field("tool_calls", &Message::tool_calls),
        optional_field("tool_call_id", &Message::tool_call_id),
    };
};

template <>
struct JsonFields<SearchResult> {
    static constexpr FieldTable fields{
        required_field("title", &SearchResult::title),
        required_field("url", &SearchResult::url),
        optional_field("date", &SearchResult::date),
        optional_field("last_updated", &SearchResult::last_updated),
        optional_field("snippet", &SearchResult::snippet),
        optional_field("source", &SearchResult::source),
    };
};

template <>
struct JsonFields<Cost> {
    static constexpr FieldTable fields{
        required_field("input_tokens_cost", &Cost::input_tokens_cost),
        required_field("output_tokens_cost", &Cost::output_tokens_cost),
        required_field("total_cost", &Cost::total_cost),
        optional_field("citation_tokens_cost", &Cost::citation_tokens_cost),
        optional_field("reasoning_tokens_cost", &Cost::reasoning_tokens_cost),
        optional_field("request_cost", &Cost::request_cost),
        optional_field("search_queries_cost", &Cost::search_queries_cost),
    };
};

template <>
struct JsonFields<Usage> {
    static constexpr FieldTable fields{
        required_field("prompt_tokens", &Usage::prompt_tokens),
        required_field("completion_tokens", &Usage::completion_tokens),
        required_field("total_tokens", &Usage::total_tokens),
        optional_field("citation_tokens", &Usage::citation_tokens),
        optional_field("num_search_queries", &Usage::num_search_queries),
        optional_field("reasoning_tokens", &Usage::reasoning_tokens),
        optional_field("search_context_size", &Usage::search_context_size),
        optional_field("cost", &Usage::cost),
    };
};

template <>
struct JsonFields<Choice> {
    static constexpr FieldTable fields{
        // Read as 0 when missing; a plain integer, so always written.
        optional_field("index", &Choice::index),
        optional_field("finish_reason", &Choice::finish_reason),
        required_field("message", &Choice::message),
        optional_field("delta", &Choice::delta),
    };
};

template <>
struct JsonFields<ChatCompletion> {
    static constexpr FieldTable fields{
        required_field("id", &ChatCompletion::id),
        required_field("model", &ChatCompletion::model),
        required_field("created", &ChatCompletion::created),
        optional_field("object", &ChatCompletion::object),
        required_field("choices", &ChatCompletion::choices),
        // Lists: missing, null and empty are all an empty vector, written as nothing.
        optional_field("citations", &ChatCompletion::citations),
        optional_field("search_results", &ChatCompletion::search_results),
        optional_field("images", &ChatCompletion::images),
        optional_field("related_questions", &ChatCompletion::related_questions),
        optional_field("usage", &ChatCompletion::usage),
    };
};

template <>
struct JsonFields<JobSummary> {
    // Every job body the API sends carries all three timestamps, null until they happen (see its
    // examples); written the same way, a job reads like the API's own.
    static constexpr FieldTable fields{
        required_field("id", &JobSummary::id),
        JobStatusField{},
        required_field("model", &JobSummary::model),
        required_field("created_at", &JobSummary::created_at),
        optional_field("started_at", &JobSummary::started_at, WhenAbsent::null),
        optional_field("completed_at", &JobSummary::completed_at, WhenAbsent::null),
        optional_field("failed_at", &JobSummary::failed_at, WhenAbsent::null),
    };
};

template <>
struct JsonFields<Job> {
    // Like the timestamps, the API writes both of these in every job body, null when there is none.
    static constexpr FieldTable fields{
        JsonFields<JobSummary>::fields,
        optional_field("error_message", &Job::error_message, WhenAbsent::null),
        optional_field("response", &Job::response, WhenAbsent::null),
    };
};

template <>
struct JsonFields<JobPage> {
    static constexpr FieldTable fields{
        required_field("requests", &JobPage::jobs),
        optional_field<PageTokenCodec>("next_token", &JobPage::next_token),
    };
};

/// The chat parameters; `extra_params` is not in the table: it is merged over the typed members.
template <>
struct JsonFields<ChatRequest> {
    static constexpr FieldTable fields{
        required_field("model", &ChatRequest::model),
        required_field("messages", &ChatRequest::messages),
        optional_field("max_tokens", &ChatRequest::max_tokens),
        optional_field("temperature", &ChatRequest::temperature),
        optional_field("top_p", &ChatRequest::top_p),
        optional_field("top_k", &ChatRequest::top_k),
        optional_field("presence_penalty", &ChatRequest::presence_penalty),
        optional_field("frequency_penalty", &ChatRequest::frequency_penalty),
        optional_field("search_mode", &ChatRequest::search_mode),
        optional_field("search_domain_filter", &ChatRequest::search_domain_filter),
        optional_field("search_recency_filter", &ChatRequest::search_recency_filter),
        optional_field("search_after_date_filter", &ChatRequest::search_after_date_filter),
        optional_field("search_before_date_filter", &ChatRequest::search_before_date_filter),
        optional_field("return_images", &ChatRequest::return_images),
        optional_field("return_related_questions", &ChatRequest::return_related_questions),
        optional_field("reasoning_effort", &ChatRequest::reasoning_effort),
        optional_field("response_format", &ChatRequest::response_format),
        optional_field("web_search_options", &ChatRequest::web_search_options),
        optional_field("disable_search", &ChatRequest::disable_search),
    };
};

template <>
struct JsonDecoder<ContentPart> : TableDecoder<ContentPart> {};
template <>
struct JsonDecoder<Message> : TableDecoder<Message> {};
template <>
struct JsonDecoder<SearchResult> : TableDecoder<SearchResult> {};
template <>
struct JsonDecoder<Cost> : TableDecoder<Cost> {};
template <>
struct JsonDecoder<Usage> : TableDecoder<Usage> {};
template <>
struct JsonDecoder<Choice> : TableDecoder<Choice> {};
template <>
struct JsonDecoder<JobSummary> : TableDecoder<JobSummary> {};
template <>
struct JsonDecoder<Job> : TableDecoder<Job> {};
template <>
struct JsonDecoder<JobPage> : TableDecoder<JobPage> {};

/// Besides its table, a completion keeps the whole object it was read from in `raw`.
template <>
struct JsonDecoder<ChatCompletion> {
    static void decode_into(json::value& value, const JsonPath& at, ChatCompletion& completion) {
        json::object& object = expect_object(value, at);
        // The whole object is kept in `raw` and written back on encode, unknown members included.
        require_finite_numbers(value, at);
        decode_fields(object, at, completion);
        // Everything typed has been copied out; the object itself becomes the raw view. A tree in a
        // reference-counted arena (parse_body's, for a large body) is taken whole, the arena with it:
        // raw is constructed anew in place, since assigning would copy it into raw's resource. Assigning
        // moves a tree in the default resource and copies one out of parse_body's stack arena.
        if (object.storage().is_shared()) {
            std::destroy_at(&completion.raw);
            std::construct_at(&completion.raw, std::move(object));
        } else {
            completion.raw = std::move(object);
        }
    }

    static ChatCompletion decode(json::value& value, const JsonPath& at) {
        ChatCompletion completion;
        decode_into(value, at, completion);
        return completion;
    }
};

/// The library only writes requests; reading one back exists so that the table is tested in both
/// directions. Members the table lacks become `extra_params`, as they were sent.
template <>
struct JsonDecoder<ChatRequest> {
    static void decode_into(json::value& value, const JsonPath& at, ChatRequest& request) {
        json::object& object = expect_object(value, at);
        require_finite_numbers(value, at);
        decode_fields(object, at, request);
        for (const auto& member : object) {
            if (!is_field_name<ChatRequest>(member.key())) {
                request.extra_params[member.key()] = member.value();
            }
        }
    }

    static ChatRequest decode(json::value& value, const JsonPath& at) {
        ChatRequest request;
        decode_into(value, at, request);
        return request;
    }
};

}  // namespace detail

}  // namespace perplexity
