// The one place where model types meet JSON: a decoder and an encoder for each.
//
// Decoders are tolerant of what the API adds (unknown members are ignored, null equals absent for
// optional members, unknown statuses decode as JobStatus::unknown) and strict about what the contract
// requires (a missing or mistyped required member fails with its path).
// Encoders are Boost.JSON `tag_invoke` overloads, so `boost::json::value_from(job)` works for users.
#pragma once

#include <perplexity/chat.hpp>
#include <perplexity/detail/json_reader.hpp>
#include <perplexity/job.hpp>

#include <boost/json/value_from.hpp>

namespace perplexity {
namespace detail {

template <>
struct JsonDecoder<ContentPart> {
    static ContentPart decode(json::value& value, const JsonPath& at) {
        json::object& object = expect_object(value, at);
        ContentPart part;
        part.type = required_member<std::string>(object, "type", at);
        part.text = optional_member<std::string>(object, "text", at);
        if (json::value* image = object.if_contains("image_url"); image && !image->is_null()) {
            const JsonPath image_at(at, "image_url");
            // The API's shape is {"url": "..."}; a bare string is accepted too.
            if (image->is_string()) {
                part.image_url = std::string(image->get_string());
            } else {
                part.image_url =
                    required_member<std::string>(expect_object(*image, image_at), "url", image_at);
            }
        }
        return part;
    }
};

template <>
struct JsonDecoder<MessageContent> {
    static MessageContent decode(json::value& value, const JsonPath& at) {
        if (value.is_null()) {
            return std::monostate{};
        }
        if (value.is_string()) {
            return std::string(value.get_string());
        }
        if (value.is_array()) {
            return JsonDecoder<std::vector<ContentPart>>::decode(value, at);
        }
        fail_type(value, at, "a string, an array of content parts or null");
    }
};

template <>
struct JsonDecoder<Message> {
    static Message decode(json::value& value, const JsonPath& at) {
        json::object& object = expect_object(value, at);
        Message message;
        message.role = required_member<std::string>(object, "role", at);
        if (json::value* content = object.if_contains("content")) {
            message.content = JsonDecoder<MessageContent>::decode(*content, JsonPath(at, "content"));
        }
        message.reasoning_steps = optional_member<json::value>(object, "reasoning_steps", at);
        message.tool_calls = optional_member<json::value>(object, "tool_calls", at);
        message.tool_call_id = optional_member<std::string>(object, "tool_call_id", at);
        return message;
    }
};

template <>
struct JsonDecoder<SearchResult> {
    static SearchResult decode(json::value& value, const JsonPath& at) {
        json::object& object = expect_object(value, at);
        SearchResult result;
        result.title = required_member<std::string>(object, "title", at);
        result.url = required_member<std::string>(object, "url", at);
        result.date = optional_member<std::string>(object, "date", at);
        result.last_updated = optional_member<std::string>(object, "last_updated", at);
        result.snippet = optional_member<std::string>(object, "snippet", at);
        result.source = optional_member<std::string>(object, "source", at);
        return result;
    }
};

template <>
struct JsonDecoder<Cost> {
    static Cost decode(json::value& value, const JsonPath& at) {
        json::object& object = expect_object(value, at);
        Cost cost;
        cost.input_tokens_cost = required_member<double>(object, "input_tokens_cost", at);
        cost.output_tokens_cost = required_member<double>(object, "output_tokens_cost", at);
        cost.total_cost = required_member<double>(object, "total_cost", at);
        cost.citation_tokens_cost = optional_member<double>(object, "citation_tokens_cost", at);
        cost.reasoning_tokens_cost = optional_member<double>(object, "reasoning_tokens_cost", at);
        cost.request_cost = optional_member<double>(object, "request_cost", at);
        cost.search_queries_cost = optional_member<double>(object, "search_queries_cost", at);
        return cost;
    }
};

template <>
struct JsonDecoder<Usage> {
    static Usage decode(json::value& value, const JsonPath& at) {
        json::object& object = expect_object(value, at);
        Usage usage;
        usage.prompt_tokens = required_member<std::int64_t>(object, "prompt_tokens", at);
        usage.completion_tokens = required_member<std::int64_t>(object, "completion_tokens", at);
        usage.total_tokens = required_member<std::int64_t>(object, "total_tokens", at);
        usage.citation_tokens = optional_member<std::int64_t>(object, "citation_tokens", at);
        usage.num_search_queries = optional_member<std::int64_t>(object, "num_search_queries", at);
        usage.reasoning_tokens = optional_member<std::int64_t>(object, "reasoning_tokens", at);
        usage.search_context_size = optional_member<std::string>(object, "search_context_size", at);
        usage.cost = optional_member<Cost>(object, "cost", at);
        return usage;
    }
};

template <>
struct JsonDecoder<Choice> {
    static Choice decode(json::value& value, const JsonPath& at) {
        json::object& object = expect_object(value, at);
        Choice choice;
        choice.index = optional_member<std::int64_t>(object, "index", at).value_or(0);
        choice.finish_reason = optional_member<std::string>(object, "finish_reason", at);
        choice.message = required_member<Message>(object, "message", at);
        choice.delta = optional_member<Message>(object, "delta", at);
        return choice;
    }
};

template <>
struct JsonDecoder<ChatCompletion> {
    static ChatCompletion decode(json::value& value, const JsonPath& at) {
        json::object& object = expect_object(value, at);
        // The whole object is kept in `raw` and written back on encode, unknown members included.
        require_finite_numbers(value, at);
        ChatCompletion completion;
        completion.id = required_member<std::string>(object, "id", at);
        completion.model = required_member<std::string>(object, "model", at);
        completion.created = required_member<std::int64_t>(object, "created", at);
        completion.object = optional_member<std::string>(object, "object", at);
        completion.choices = required_member<std::vector<Choice>>(object, "choices", at);
        completion.citations = list_member<std::string>(object, "citations", at);
        completion.search_results = list_member<SearchResult>(object, "search_results", at);
        if (const json::value* images = object.if_contains("images"); images && !images->is_null()) {
            // Into the default resource: the parsed tree may live in a short-lived arena.
            completion.images.emplace(*images, json::storage_ptr());
        }
        completion.related_questions = list_member<std::string>(object, "related_questions", at);
        completion.usage = optional_member<Usage>(object, "usage", at);
        // Everything typed has been copied out; the object itself becomes the raw view: moved when it
        // was parsed into the default resource, copied out when it lives in parse_body's arena.
        completion.raw = std::move(object);
        return completion;
    }
};

inline void decode_summary_fields(json::object& object, const JsonPath& at, JobSummary& summary) {
    summary.id = required_member<std::string>(object, "id", at);
    summary.status_text = required_member<std::string>(object, "status", at);
    summary.status = job_status_from_string(summary.status_text);
    summary.model = required_member<std::string>(object, "model", at);
    summary.created_at = required_member<std::int64_t>(object, "created_at", at);
    summary.started_at = optional_member<std::int64_t>(object, "started_at", at);
    summary.completed_at = optional_member<std::int64_t>(object, "completed_at", at);
    summary.failed_at = optional_member<std::int64_t>(object, "failed_at", at);
}

template <>
struct JsonDecoder<JobSummary> {
    static JobSummary decode(json::value& value, const JsonPath& at) {
        JobSummary summary;
        decode_summary_fields(expect_object(value, at), at, summary);
        return summary;
    }
};

template <>
struct JsonDecoder<Job> {
    static Job decode(json::value& value, const JsonPath& at) {
        json::object& object = expect_object(value, at);
        Job job;
        decode_summary_fields(object, at, job);
        job.error_message = optional_member<std::string>(object, "error_message", at);
        if (auto response = optional_member<ChatCompletion>(object, "response", at)) {
            job.response = std::make_shared<const ChatCompletion>(std::move(*response));
        }
        return job;
    }
};

template <>
struct JsonDecoder<JobPage> {
    static JobPage decode(json::value& value, const JsonPath& at) {
        json::object& object = expect_object(value, at);
        JobPage page;
        page.jobs = required_member<std::vector<JobSummary>>(object, "requests", at);
        page.next_token = optional_member<std::string>(object, "next_token", at);
        if (page.next_token && page.next_token->empty()) {
            page.next_token.reset();
        }
        return page;
    }
};

template <class T>
void put_optional(json::object& object, std::string_view key, const std::optional<T>& value) {
    if (value) {
        object[key] = json::value_from(*value, object.storage());
    }
}

/// Writes `value` (a std::optional or a shared_ptr), or null when it is empty.
template <class Nullable>
void put_nullable(json::object& object, std::string_view key, const Nullable& value) {
    if (value) {
        object[key] = json::value_from(*value, object.storage());
    } else {
        object[key] = nullptr;
    }
}

template <class T>
void put_list(json::object& object, std::string_view key, const std::vector<T>& values) {
    if (!values.empty()) {
        object[key] = json::value_from(values, object.storage());
    }
}

inline void encode_summary_fields(json::object& object, const JobSummary& summary) {
    object["id"] = summary.id;
    object["model"] = summary.model;
    object["created_at"] = summary.created_at;
    put_nullable(object, "started_at", summary.started_at);
    put_nullable(object, "completed_at", summary.completed_at);
    put_nullable(object, "failed_at", summary.failed_at);
    object["status"] =
        summary.status_text.empty() ? std::string(to_string(summary.status)) : summary.status_text;
}

}  // namespace detail

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& out, const ContentPart& part) {
    boost::json::object& object = out.emplace_object();
    object["type"] = part.type;
    detail::put_optional(object, "text", part.text);
    if (part.image_url) {
        object["image_url"] = boost::json::object{{"url", *part.image_url}};
    }
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& out, const Message& message) {
    boost::json::object& object = out.emplace_object();
    object["role"] = message.role;
    boost::json::value& content = object["content"];
    if (const auto* text = std::get_if<std::string>(&message.content)) {
        content = *text;
    } else if (const auto* parts = std::get_if<std::vector<ContentPart>>(&message.content)) {
        content = boost::json::value_from(*parts, object.storage());
    }
    detail::put_optional(object, "reasoning_steps", message.reasoning_steps);
    detail::put_optional(object, "tool_calls", message.tool_calls);
    detail::put_optional(object, "tool_call_id", message.tool_call_id);
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& out, const SearchResult& result) {
    boost::json::object& object = out.emplace_object();
    object["title"] = result.title;
    object["url"] = result.url;
    detail::put_nullable(object, "date", result.date);
    detail::put_nullable(object, "last_updated", result.last_updated);
    detail::put_optional(object, "snippet", result.snippet);
    detail::put_optional(object, "source", result.source);
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& out, const Cost& cost) {
    boost::json::object& object = out.emplace_object();
    object["input_tokens_cost"] = cost.input_tokens_cost;
    object["output_tokens_cost"] = cost.output_tokens_cost;
    detail::put_optional(object, "citation_tokens_cost", cost.citation_tokens_cost);
    detail::put_optional(object, "reasoning_tokens_cost", cost.reasoning_tokens_cost);
    detail::put_optional(object, "search_queries_cost", cost.search_queries_cost);
    detail::put_nullable(object, "request_cost", cost.request_cost);
    object["total_cost"] = cost.total_cost;
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& out, const Usage& usage) {
    boost::json::object& object = out.emplace_object();
    object["prompt_tokens"] = usage.prompt_tokens;
    object["completion_tokens"] = usage.completion_tokens;
    object["total_tokens"] = usage.total_tokens;
    detail::put_optional(object, "citation_tokens", usage.citation_tokens);
    detail::put_optional(object, "num_search_queries", usage.num_search_queries);
    detail::put_optional(object, "reasoning_tokens", usage.reasoning_tokens);
    detail::put_optional(object, "search_context_size", usage.search_context_size);
    detail::put_optional(object, "cost", usage.cost);
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& out, const Choice& choice) {
    boost::json::object& object = out.emplace_object();
    object["index"] = choice.index;
    detail::put_nullable(object, "finish_reason", choice.finish_reason);
    object["message"] = boost::json::value_from(choice.message, object.storage());
    detail::put_optional(object, "delta", choice.delta);
}

/// Starts from the raw completion, so members this library does not model survive a round trip, then
/// writes every typed member over it: the typed members are the truth.
inline void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                       const ChatCompletion& completion) {
    boost::json::object& object = out.emplace_object();
    object = completion.raw;
    object["id"] = completion.id;
    object["model"] = completion.model;
    object["created"] = completion.created;
    detail::put_optional(object, "object", completion.object);
    object["choices"] = boost::json::value_from(completion.choices, object.storage());
    detail::put_list(object, "citations", completion.citations);
    detail::put_list(object, "search_results", completion.search_results);
    detail::put_optional(object, "images", completion.images);
    detail::put_list(object, "related_questions", completion.related_questions);
    detail::put_optional(object, "usage", completion.usage);
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& out, const JobSummary& summary) {
    detail::encode_summary_fields(out.emplace_object(), summary);
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& out, const Job& job) {
    boost::json::object& object = out.emplace_object();
    detail::encode_summary_fields(object, job);
    detail::put_nullable(object, "error_message", job.error_message);
    detail::put_nullable(object, "response", job.response);
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& out, const JobPage& page) {
    boost::json::object& object = out.emplace_object();
    object["requests"] = boost::json::value_from(page.jobs, object.storage());
    detail::put_optional(object, "next_token", page.next_token);
}

/// The chat parameters object (the `request` member of a create body).
inline void tag_invoke(boost::json::value_from_tag, boost::json::value& out, const ChatRequest& request) {
    boost::json::object& object = out.emplace_object();
    object["model"] = request.model;
    object["messages"] = boost::json::value_from(request.messages, object.storage());
    detail::put_optional(object, "max_tokens", request.max_tokens);
    detail::put_optional(object, "temperature", request.temperature);
    detail::put_optional(object, "top_p", request.top_p);
    detail::put_optional(object, "top_k", request.top_k);
    detail::put_optional(object, "presence_penalty", request.presence_penalty);
    detail::put_optional(object, "frequency_penalty", request.frequency_penalty);
    if (request.search_mode) {
        object["search_mode"] = to_string(*request.search_mode);
    }
    detail::put_optional(object, "search_domain_filter", request.search_domain_filter);
    detail::put_optional(object, "search_recency_filter", request.search_recency_filter);
    detail::put_optional(object, "search_after_date_filter", request.search_after_date_filter);
    detail::put_optional(object, "search_before_date_filter", request.search_before_date_filter);
    detail::put_optional(object, "return_images", request.return_images);
    detail::put_optional(object, "return_related_questions", request.return_related_questions);
    if (request.reasoning_effort) {
        object["reasoning_effort"] = to_string(*request.reasoning_effort);
    }
    detail::put_optional(object, "response_format", request.response_format);
    detail::put_optional(object, "web_search_options", request.web_search_options);
    detail::put_optional(object, "disable_search", request.disable_search);
    for (const auto& [key, value] : request.extra_params) {
        object[key] = value;
    }
}

}  // namespace perplexity
