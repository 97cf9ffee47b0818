// The Boost.JSON encoders of every model type, declared: what <perplexity/json.hpp> needs for
// `boost::json::value_from(job)` to compile in a user's unit. Defined in json.ipp (inline, header-only;
// once, in the unit of <perplexity/src.hpp>, with separate compilation), from the tables of
// json_mapping.hpp and response_mapping.hpp.
#pragma once

#include <perplexity/chat.hpp>
#include <perplexity/detail/config.hpp>
#include <perplexity/job.hpp>
#include <perplexity/response.hpp>
#include <perplexity/response_request.hpp>

#include <boost/json/value.hpp>
#include <boost/json/value_from.hpp>

namespace perplexity {

PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const ContentPart& part);
PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const Message& message);
PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const SearchResult& result);
PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out, const Cost& cost);
PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const Usage& usage);
PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const Choice& choice);
PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const ChatCompletion& completion);
PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const JobSummary& summary);
PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out, const Job& job);
PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const JobPage& page);
PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const ChatRequest& request);
PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const ResponseError& error);
PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const Annotation& annotation);
PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const OutputContent& content);
PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const OutputItem& item);
PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const FetchedPage& page);
PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const ResponseCost& cost);
PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const ResponseUsage& usage);
PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const Response& response);
PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const CancelAcknowledgement& acknowledgement);
PERPLEXITY_ASYNC_DECL void tag_invoke(boost::json::value_from_tag, boost::json::value& out,
                                      const ResponseRequest& request);

}  // namespace perplexity
