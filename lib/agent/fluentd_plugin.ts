/**
 * The Fluentd filter plugin the rendered config loads (`-p`): stock Fluentd
 * has no filter that makes a record valid UTF-8 or merges a JSON line into
 * the record while keeping the agent's own keys, so the injector ships one,
 * as a second file of the agent's config volume.
 * @module
 */
import { APP_FIELDS_KEY, RESERVED_KEYS } from "./pipeline.ts";

/** Where the plugin lies in the agent's config dir, and the dir given to `fluentd -p`. */
export const FLUENTD_PLUGIN_DIR = "plugin";
/** The plugin's file name: Fluentd loads `filter_<type>.rb` for `@type <type>`. */
export const FLUENTD_PLUGIN_FILE = "filter_sidecar_record.rb";
/** The `@type` of the plugin's filter. */
export const FLUENTD_PLUGIN_TYPE = "sidecar_record";

/**
 * The plugin's Ruby source. Each byte that is not part of valid UTF-8 becomes
 * U+E000 + the byte (U+E080..U+E0FF), so every record line is valid UTF-8 and
 * the original bytes can be recovered. With `json`, a line that is a JSON
 * object becomes the record's fields; app keys named like the agent's own
 * move under `app_fields`; anything else stays `log` text.
 */
export const FLUENTD_PLUGIN = `# Rendered by sidecar-injector; see docs/log-path.md "Records".
require 'json'
require 'fluent/plugin/filter'

module Fluent::Plugin
  class SidecarRecordFilter < Filter
    Fluent::Plugin.register_filter('${FLUENTD_PLUGIN_TYPE}', self)

    config_param :parser, :enum, list: [:none, :json], default: :none
    RESERVED = ${JSON.stringify([...RESERVED_KEYS, APP_FIELDS_KEY])}.freeze
    APP_FIELDS = '${APP_FIELDS_KEY}'.freeze

    def filter(tag, time, record)
      line = record['log']
      return record unless line.is_a?(String)
      line = SidecarRecordFilter.utf8(line)
      record['log'] = line
      return record unless @parser == :json && line.lstrip.start_with?('{')
      fields = begin
        JSON.parse(line)
      rescue JSON::ParserError
        nil
      end
      return record unless fields.is_a?(Hash)
      out = {}
      moved = {}
      fields.each { |k, v| (RESERVED.include?(k) ? moved : out)[k] = v }
      out[APP_FIELDS] = moved unless moved.empty?
      record.each { |k, v| out[k] = v unless k == 'log' }
      out
    end

    def self.utf8(text)
      s = text.dup.force_encoding(Encoding::UTF_8)
      return s if s.valid_encoding?
      s.scrub { |bad| bad.bytes.map { |b| (0xE000 + b).chr(Encoding::UTF_8) }.join }
    end
  end
end
`;
