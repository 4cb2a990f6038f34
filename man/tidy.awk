# tidy.awk - drops the empty paragraphs scdoc 1.11 writes, which `mandoc -T
# lint` reports as "skipping paragraph macro": ".P" right after .TH/.SH/.SS or
# right before .SH/.SS, and moves a ".P" that ends an indented block (before
# .RE) to after it, where it separates the next paragraph. The rendered page
# stays the same.
/^\.P$/ {
    if (prev ~ /^\.(TH|SH|SS)( |$)/ || held) next
    held = 1
    next
}
/^\.RE$/ && held { print; prev = $0; next }
{
    if (held && $0 !~ /^\.(SH|SS)( |$)/) print ".P"
    held = 0
    print
    prev = $0
}
END { if (held) print ".P" }
