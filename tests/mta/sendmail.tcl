# sendmail.tcl -- (in progress)
namespace eval ::mta::sendmail {}
