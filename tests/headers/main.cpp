// The other translation units each include one public header; linking them into one program shows that
// no header defines a function or variable that is not inline.
int main() {
    return 0;
}
