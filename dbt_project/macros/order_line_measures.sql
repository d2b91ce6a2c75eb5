{#
    The money and lateness of an order line (TPC-H), defined once: fct_order_lines stores them
    per line, and fct_orders sums them straight from Silver, so it does not wait for the lines'
    fact. `line` is the alias of a relation with the staging columns of a line item.
#}
{% macro line_net_revenue(line) -%}
    {{ line }}.extended_price * (1 - {{ line }}.discount)
{%- endmacro %}


{% macro line_charge(line) -%}
    {{ line_net_revenue(line) }} * (1 + {{ line }}.tax)
{%- endmacro %}


{% macro line_is_late(line) -%}
    {{ line }}.receipt_date > {{ line }}.commit_date
{%- endmacro %}
